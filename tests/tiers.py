"""The test tiers' file lists (read by conftest.py and checked by test_tiers.py)."""

# The fast tier (`make check`) leaves these files out: each trains models or runs whole verbs, 5-20 s a file
# on 2 cores. `make test` runs them (and CI); the heavy end-to-end cases are marked `slow` where they are.
INTEGRATION_FILES = {
    "tests/test_dp.py",
    "tests/test_factors.py",
    "tests/own/test_readme.py",
    "tests/test_saved_graphs.py",
    "tests/test_canary.py",
    "tests/active/test_workflow.py",
    "tests/test_record.py",
    "tests/active/test_active.py",
    "tests/test_cli.py",
    "tests/models/test_backbones.py",
    "tests/attacks/test_reference_transcriptions.py",
    "tests/test_hf_audit.py",
    "tests/attacks/test_bavaria_informia_cli.py",
    "tests/attacks/test_imitate.py",
}
