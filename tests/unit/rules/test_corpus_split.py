"""The independent corpus was split once, before any rule change: the held-out part is
pinned by its hash, so it cannot be edited to fit the rules."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

INDEPENDENT = Path(__file__).resolve().parents[2] / "rules" / "independent"
# Each batch's held-out part, split once at random before the rules saw it (batch n by the
# four writers w4n-3 to w4n).
HELD_OUT_SHA256 = {
    "heldout.yaml": "9880b68732c7dce6d11e99cc4fa3ddce921c866898152d30f4351b1bb392d441",
    "heldout-2.yaml": "dbb43366c99104250a0a61d5845f65c3c10551905b8b203f033de3e978af445d",
    "heldout-3.yaml": "d90a287ed8198ca5fb071b9015b578e01bb045fc245aaed05aa6e58dc24a9223",
    "heldout-4.yaml": "ce43ddd57dc44350298e4605973deefdec916294daf70d425216eb831a67ce9d",
    "heldout-5.yaml": "d7c08f7fcfa63d9fc54dbd6c24edacdcb83bd3619b9da75e2ae54ddb2aea3000",
    "heldout-6.yaml": "83d0f816db9296d5985a7f83e45e9b18bdcf726929f6a58c8d85e123e6c60427",
    "heldout-7.yaml": "d1755e0233e53c64e83b2ff1a7844ddf594b89285853f083e53221f49f596444",
    "heldout-8.yaml": "8cbbce4277263540a5f499777b689b4918d67e87b58d284d17f9fd3355f978bf",
    "heldout-9.yaml": "ec366e643f4e51f7c104df41499d2e90bc5295b6704e6e412c6db68b15bb4e60",
    "heldout-10.yaml": "15d180fe4a2ca2e380535bbe10af92a02ee38305a08c1b739d7c5599a6369644",
    "heldout-11.yaml": "2ae222d0198f7460af949bed8415b44e991f20fc26f7c50311c13e8fc7312374",
}


@pytest.mark.parametrize(("name", "sha256"), sorted(HELD_OUT_SHA256.items()))
def test_the_held_out_parts_are_the_ones_split_off_before_tuning(name: str, sha256: str) -> None:
    assert hashlib.sha256((INDEPENDENT / name).read_bytes()).hexdigest() == sha256


def _cases(name: str) -> list[dict[str, object]]:
    cases: list[dict[str, object]] = yaml.safe_load(
        (INDEPENDENT / name).read_text(encoding="utf-8")
    )["cases"]
    return cases


@pytest.mark.parametrize(
    ("tuning_file", "held_file", "sizes"),
    [
        ("tuning.yaml", "heldout.yaml", (440, 220)),
        ("tuning-2.yaml", "heldout-2.yaml", (400, 200)),
        ("tuning-3.yaml", "heldout-3.yaml", (400, 200)),
        ("tuning-4.yaml", "heldout-4.yaml", (400, 200)),
        ("tuning-5.yaml", "heldout-5.yaml", (400, 200)),
        ("tuning-6.yaml", "heldout-6.yaml", (400, 200)),
        ("tuning-7.yaml", "heldout-7.yaml", (400, 200)),
        ("tuning-8.yaml", "heldout-8.yaml", (400, 200)),
        ("tuning-9.yaml", "heldout-9.yaml", (400, 200)),
        ("tuning-10.yaml", "heldout-10.yaml", (400, 200)),
        ("tuning-11.yaml", "heldout-11.yaml", (400, 200)),
    ],
)
def test_the_parts_share_no_case_and_hold_two_thirds_and_one_third(
    tuning_file: str, held_file: str, sizes: tuple[int, int]
) -> None:
    tuning, held = _cases(tuning_file), _cases(held_file)
    assert not {c["name"] for c in tuning} & {c["name"] for c in held}
    assert (len(tuning), len(held)) == sizes
    for part in (tuning, held):
        languages = [c["language"] for c in part]
        assert min(languages.count("es"), languages.count("en")) >= 0.4 * len(part)
