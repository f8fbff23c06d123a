"""`langscene --help` and the parsing of every command stay light: torch and open3d (seconds to
import) load inside a command's run(), never while the CLI builds its parser (STYLE point 9)."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "open3d")

# A fresh interpreter (this one has torch already, from conftest) builds the parser, prints --help,
# parses a query, and reports which heavy modules got imported.
PROBE = """
import contextlib, io, json, sys
from langscene_ros.cli import build_parser, main
with contextlib.redirect_stdout(io.StringIO()) as help_text:
    try:
        main(["--help"])
    except SystemExit:
        pass
args = build_parser().parse_args(["query", "red mug", "--json"])
heavy = sorted({name.split(".")[0] for name in sys.modules} & set(sys.argv[1:]))
print(json.dumps({"help": help_text.getvalue(), "prompt": args.prompt, "heavy": heavy}))
"""


def test_cli_help_and_parsing_import_neither_torch_nor_open3d():
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *HEAVY], cwd=REPO, capture_output=True, text=True, timeout=120, check=True
    )
    report = json.loads(done.stdout)
    assert "train-lqc" in report["help"] and "world" in report["help"]  # every command registered
    assert report["prompt"] == "red mug"
    assert report["heavy"] == [], f"imported while parsing: {report['heavy']}"
