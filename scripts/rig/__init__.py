"""Parts of the rig fit run by scripts/fit_rig.py (the entry point, which puts scripts/ on sys.path).

measure: MediaPipe landmarks and blendshapes of every source file, cached under build/rig_cache/.
samples: measurements -> displacement samples against per-subject references, the held-out split.
facs: face anatomy: the region each coefficient may move, landmark groups, FACS displacements.
fit: ridge basis per region, R^2, blink calibration.
"""
