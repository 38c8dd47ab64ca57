"""`make test` does its own set-up: the browser the web page test needs comes from apt, or make stops at once."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="no make on this machine")


def _make(*args):
    return subprocess.run(["make", "-s", "-C", str(ROOT), "browser", *args], capture_output=True, text=True,
                          timeout=60)


def test_present_browser_needs_nothing():
    done = _make("BROWSER=sh", "APT_GET=false")
    assert done.returncode == 0 and done.stdout == ""


def test_missing_browser_without_apt_stops_with_one_line():
    done = _make("BROWSER=no-such-browser-xyz", "APT_GET=/nonexistent/apt-get")
    assert done.returncode != 0
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("make: ") and "***" not in ln]
    assert lines == ["make: the web page test needs the system package no-such-browser-xyz: run "
                     "'sudo apt-get install no-such-browser-xyz' (or your system's equivalent) and re-run"]


def test_failed_apt_install_stops_with_one_line():
    import os

    if os.geteuid() != 0:
        pytest.skip("the apt path is taken only as root")
    done = _make("BROWSER=no-such-browser-xyz", "APT_GET=false")
    assert done.returncode != 0
    assert "make: installing the Debian package no-such-browser-xyz" in done.stdout
    assert "make: could not install no-such-browser-xyz with apt-get" in done.stdout
