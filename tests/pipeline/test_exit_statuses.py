"""The exit statuses the docs print are the one table's (hpcdist.exitcodes)."""

from __future__ import annotations

import re
from pathlib import Path

from hpcdist.batch.jobs import EXIT_CODES
from hpcdist.errors import HpcdistError
from hpcdist.exitcodes import PIPELINE, ExitCode, table

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_docs_pipelines_prints_the_pipeline_statuses_from_the_table() -> None:
    assert table(PIPELINE | {ExitCode.TIMEOUT}) in (DOCS / "pipelines.md").read_text()


def test_docs_batch_lists_the_status_codes_of_every_state() -> None:
    text = (DOCS / "batch.md").read_text()
    section = text[text.index("**Exit codes**"):]
    section = section[:section.index("\n\n", section.index("| --- |"))]
    documented = {int(code) for code in re.findall(r"^\| (\d+) \|", section, re.M)}
    assert set(EXIT_CODES.values()) | {ExitCode.SPEC, ExitCode.BATCH_COMMAND} == documented


def test_every_number_is_one_member_and_prints_as_a_number() -> None:
    assert len({int(c) for c in ExitCode}) == len(ExitCode.__members__)
    assert str(ExitCode.WALLTIME) == f"{ExitCode.WALLTIME}" == "5" and ExitCode.INTERRUPTED == 130
    assert all(isinstance(c.meaning, str) and c.meaning for c in ExitCode)


def test_every_error_exits_with_a_member_of_the_table() -> None:
    def subclasses(cls: type) -> list[type]:
        return [cls] + [s for sub in cls.__subclasses__() for s in subclasses(sub)]

    import hpcdist.errors  # noqa: F401 - every class is defined there

    assert all(isinstance(cls.exit_code, ExitCode) for cls in subclasses(HpcdistError))
