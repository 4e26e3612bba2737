"""`python -m bench --smoke`: the benchmark harness end to end, with tiny sizes and one run.

It checks the plumbing (systems start and stop, every scenario runs, the reports are written and
carry ratios), not the numbers: with blobs of a few MiB those mean little.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ("/usr/bin/docker-registry", "skopeo", "curl", "wrk", "nginx")
SCENARIOS = ["S1", "S2", "S3", "S4", "S5", "S6", "S7"]
RATIO = re.compile(r"\| \d+(\.\d+)?x \|")


def test_smoke_run_writes_reports_with_ratios(tmp_path: Path) -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"the benchmark needs {', '.join(missing)}")
    out = tmp_path / "results"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--smoke",
            "--out",
            str(out),
            "--workdir",
            str(tmp_path),
            "--image-cache",
            str(tmp_path / "images"),
        ],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-6000:]

    data = json.loads((out / "latest.json").read_text())
    assert data["mode"] == "smoke"
    assert [scenario["key"] for scenario in data["scenarios"]] == SCENARIOS
    for scenario in data["scenarios"]:
        assert scenario["error"] is None, scenario
        assert scenario["tables"], scenario["key"]
        for table in scenario["tables"]:
            assert not table["failures"], (scenario["key"], table["title"], table["failures"])
            regcache = table["systems"]["regcache"]
            assert regcache["values"], (scenario["key"], table["title"])
            for reference in table["references"]:
                assert regcache["ratios"][reference] is not None, (scenario["key"], reference)
        for target in scenario["targets"]:
            assert target["met"] is not None, target  # measured, whatever the verdict

    report = (out / "latest.md").read_text()
    for key in SCENARIOS:
        assert f"## {key}. " in report
    assert "## Targets for regcache" in report
    assert "ratio to nginx" in report and "ratio to direct" in report
    assert len(RATIO.findall(report)) >= 10
    if importlib.util.find_spec("matplotlib") is not None:
        assert (out / "latest.png").read_bytes().startswith(b"\x89PNG")
