"""scripts/pg-no-default-cluster: setup runs it before installing PostgreSQL, so Debian's package
creates (and starts) no cluster 15/main; tested on files of our own, never /etc."""

from __future__ import annotations

import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "pg-no-default-cluster"
DEBIAN_DEFAULT = """\
# Default values for pg_createcluster(8)
#create_main_cluster = true
ssl = on
"""


def _run(conf: Path) -> str:
    subprocess.run([str(SCRIPT), str(conf)], check=True, timeout=30)
    return conf.read_text()


def test_creates_the_file_and_its_folder(tmp_path: Path) -> None:
    conf = tmp_path / "postgresql-common" / "createcluster.conf"
    assert _run(conf) == "create_main_cluster = false\n"


def test_adds_the_setting_and_keeps_every_other_line(tmp_path: Path) -> None:
    conf = tmp_path / "createcluster.conf"
    conf.write_text(DEBIAN_DEFAULT)
    assert _run(conf) == DEBIAN_DEFAULT + "create_main_cluster = false\n"


def test_turns_an_active_true_into_false(tmp_path: Path) -> None:
    conf = tmp_path / "createcluster.conf"
    conf.write_text("ssl = on\n  create_main_cluster=true\nlog_line_prefix = 'x'\n")
    assert _run(conf) == "ssl = on\ncreate_main_cluster = false\nlog_line_prefix = 'x'\n"


def test_running_twice_changes_nothing_more(tmp_path: Path) -> None:
    conf = tmp_path / "createcluster.conf"
    conf.write_text(DEBIAN_DEFAULT)
    once = _run(conf)
    assert _run(conf) == once
    assert once.count("create_main_cluster = false") == 1
