"""Code: nothing secret is committed. Every tracked file is scanned for key material."""

import re
import subprocess

from conftest import REPO_ROOT

# Built from parts so that this file does not match itself.
KEY_MATERIAL = re.compile(
    "-----BEGIN (RSA |EC |DSA |OPENSSH |ENCRYPTED )?"
    + "PRIVATE KEY-----"
    + r'|"private_key"\s*:\s*"-----'
    + r'|"refresh_token"\s*:\s*"[^"]{8,}'
    + "|AKIA[0-9A-Z]{16}"
)


def test_no_key_material_in_tracked_files():
    files = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert len(files) > 50
    leaks = [name for name in files if KEY_MATERIAL.search((REPO_ROOT / name).read_text(errors="ignore"))]
    assert leaks == []
