"""One workflow module per deploy of the same three workflows (tests/test_versions.py): v1 is
the code running when executions start; v2 changes them; v2_kept is v2 with v1 kept beside it.
Each step records when its body ran past its wait, so a test can tell that nothing ran twice."""
