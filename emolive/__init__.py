"""The `emolive` command line: the one place above the engine, the transport and the profiler."""
