"""Test harness shipped with the package: real worker processes and fault points."""
