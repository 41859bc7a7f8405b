"""Generated gRPC code for privsynth.v1 (do not edit; see proto/generate.py)."""
