"""The independent corpus was split once, before any rule change: the held-out part is
pinned by its hash, so it cannot be edited to fit the rules."""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

INDEPENDENT = Path(__file__).resolve().parents[2] / "rules" / "independent"
HELD_OUT_SHA256 = "9880b68732c7dce6d11e99cc4fa3ddce921c866898152d30f4351b1bb392d441"


def test_the_held_out_part_is_the_one_split_off_before_tuning() -> None:
    digest = hashlib.sha256((INDEPENDENT / "heldout.yaml").read_bytes()).hexdigest()
    assert digest == HELD_OUT_SHA256


def test_the_parts_share_no_case_and_hold_two_thirds_and_one_third() -> None:
    tuning = yaml.safe_load((INDEPENDENT / "tuning.yaml").read_text(encoding="utf-8"))["cases"]
    held = yaml.safe_load((INDEPENDENT / "heldout.yaml").read_text(encoding="utf-8"))["cases"]
    assert not {c["name"] for c in tuning} & {c["name"] for c in held}
    assert (len(tuning), len(held)) == (440, 220)
    for part in (tuning, held):
        languages = [c["language"] for c in part]
        assert min(languages.count("es"), languages.count("en")) >= 0.4 * len(part)
