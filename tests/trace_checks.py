"""Checks on Chrome trace events shared by the profiler's tests."""


def check_well_nested(events):
    """Per (pid, tid): any two spans either follow each other or one contains the other."""
    lanes = {}
    for e in events:
        if e["ph"] == "X":
            lanes.setdefault((e["pid"], e["tid"]), []).append(e)
    for spans in lanes.values():
        spans.sort(key=lambda e: (e["ts"], -e["dur"]))
        stack = []
        for e in spans:
            while stack and stack[-1] <= e["ts"]:
                stack.pop()
            end = e["ts"] + e["dur"]
            assert not stack or end <= stack[-1], f"{e} overlaps its enclosing span without nesting"
            stack.append(end)
    return lanes
