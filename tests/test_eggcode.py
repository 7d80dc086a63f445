"""Egg code -> SIC/SOD/FLOE conversion: every table entry, the 65 % rule and each quirk (spec section 2)."""

import numpy as np
import pytest

from seaice_mlflow.tasks.autoice.files.eggcode import (
    POLYGON_CODES_HEADER,
    PolygonCodeError,
    decode_polygons,
    format_polygon_codes,
    parse_polygon_codes,
    rasterise,
)

X = -9  # not filled

# Expected classes written out from the spec (not imported from the module under test).
SIC_TABLE = {0: 0, 1: 0, 2: 0, 55: 0, 10: 1, 20: 2, 30: 3, 40: 4, 50: 5, 60: 6, 70: 7, 80: 8, 90: 9, 91: 10, 92: 10}
SOD_TABLE = {
    0: 0,
    80: 0,
    81: 1,
    82: 1,
    83: 2,
    84: 2,
    85: 2,
    87: 3,
    88: 3,
    89: 3,
    86: 4,
    91: 4,
    93: 4,
    95: 5,
    96: 5,
    97: 5,
    98: 255,
    99: 255,
}
FLOE_TABLE = {0: 0, 22: 255, 1: 255, 2: 1, 3: 2, 4: 3, 5: 4, 6: 5, 7: 5, 8: 255, 9: 6, 10: 6, 21: 255}


def decode(*rows, kinds=None, **thresholds):
    """Decode rows of (CT, CA, SA, FA, CB, SB, FB, CC, SC, FC); returns a list of (SIC, SOD, FLOE)."""
    strings = [POLYGON_CODES_HEADER]
    for i, row in enumerate(rows):
        kind = kinds[i] if kinds else "I"
        codes = [i + 1, *row, X, X]
        strings.append(";".join(str(v) for v in codes) + f";{X};{kind}")
    out = decode_polygons(parse_polygon_codes(strings), **thresholds)
    return [tuple(int(out[c][i]) for c in ("SIC", "SOD", "FLOE")) for i in range(len(rows))]


@pytest.mark.parametrize("code,expected", SIC_TABLE.items())
def test_every_concentration_code(code, expected):
    ((sic, sod, floe),) = decode((code, X, 93, 5, X, X, X, X, X, X))
    assert sic == expected
    if expected == 0:  # water is identical across charts
        assert (sod, floe) == (0, 0)
    else:
        assert (sod, floe) == (4, 4)


@pytest.mark.parametrize("code,expected", SOD_TABLE.items())
def test_every_stage_code(code, expected):
    ((sic, sod, _),) = decode((91, X, code, 5, X, X, X, X, X, X))
    assert (sic, sod) == (10, expected)


@pytest.mark.parametrize("code,expected", FLOE_TABLE.items())
def test_every_form_code(code, expected):
    ((sic, _, floe),) = decode((91, X, 93, code, X, X, X, X, X, X))
    assert (sic, floe) == (10, expected)


def test_dominance_threshold_65_percent():
    # 2 of 3 tenths = 66.7 % >= 65 %: dominant; 3 of 5 = 60 %: ambiguous -> 255.
    assert decode((30, 20, 93, 5, 10, 95, 3, X, X, X)) == [(3, 4, 4)]
    assert decode((50, 30, 93, 5, 20, 95, 3, X, X, X)) == [(5, 255, 255)]
    # The v1 thresholds (0.7 SOD, 0.5 FLOE) change the same polygon's outcome.
    assert decode((50, 30, 93, 5, 20, 95, 3, X, X, X), sod_threshold=0.7, floe_threshold=0.5) == [(5, 255, 4)]


def test_dominant_class_can_be_second_slot():
    assert decode((90, 20, 95, 4, 70, 93, 6, X, X, X)) == [(9, 4, 5)]


def test_equal_classes_are_merged():
    # SA 91 and SB 93 are both thick FYI: 3 + 2 tenths of 5 = 100 % -> class 4 although CA is 60 %.
    # FA 6 and FB 7 are both vast floes: merged as well.
    assert decode((50, 30, 91, 6, 20, 93, 7, X, X, X)) == [(5, 4, 5)]


def test_merge_of_a_and_c():
    assert decode((60, 30, 95, 5, 20, 93, 4, 10, 96, 3)) == [(6, 5, 255)]  # A+C = 4/6 = 66.7 % old ice


def test_merge_of_b_and_c():
    assert decode((60, 20, 95, 5, 20, 93, 4, 20, 91, 4)) == [(6, 4, 3)]  # B+C = 4/6 FYI, medium floes


def test_three_equal_classes_quirk():
    # A = B = C: the script's assignment keeps only CA + CC in slot A (4 + 2 of 10 = 60 %), and
    # CB + CC in slot B (4 + 2 = 60 %): ambiguous, although all ice is thick FYI.
    assert decode((91, 40, 91, 5, 40, 93, 5, 20, 86, 5)) == [(10, 255, 255)]


def test_single_type_polygon_takes_total_concentration():
    # CA not filled and CT > 0: CA = CT, so the one ice type is dominant.
    assert decode((70, X, 83, 3, X, X, X, X, X, X)) == [(7, 2, 2)]


def test_water_polygon_type_w():
    assert decode((X, X, X, X, X, X, X, X, X, X), kinds=["W"]) == [(0, 0, 0)]
    assert decode((80, X, 93, 5, X, X, X, X, X, X), kinds=["w"]) == [(0, 0, 0)]


def test_fast_ice_masks_floe_of_whole_polygon():
    assert decode((92, X, 93, 8, X, X, X, X, X, X)) == [(10, 4, 255)]
    assert decode((90, 70, 93, 5, 20, 95, 8, X, X, X)) == [(9, 4, 255)]


def test_unmapped_and_missing_concentration_are_masked():
    # CT not filled: everything masked; SIGRID interval code 46 and unknown 99 too.
    assert decode((X, X, X, X, X, X, X, X, X, X)) == [(255, 255, 255)]
    assert decode((46, X, 93, 5, X, X, X, X, X, X))[0][0] == 255
    assert decode((99, X, 93, 5, X, X, X, X, X, X))[0][0] == 255


def test_unreported_stage_or_form_masks_that_chart():
    assert decode((70, X, X, 5, X, X, X, X, X, X)) == [(7, 255, 4)]
    assert decode((70, X, 93, X, X, X, X, X, X, X)) == [(7, 4, 255)]


def test_ice_free_codes_force_water_in_all_charts():
    assert decode((1, X, 81, 2, X, X, X, X, X, X)) == [(0, 0, 0)]


def test_parse_real_row_with_glued_cf():
    table = parse_polygon_codes([POLYGON_CODES_HEADER, "29;92;30;95;05;70;93;08;-9;-9;-9;-9;-9;08-9;I"])
    assert table.codes.tolist() == [[29, 92, 30, 95, 5, 70, 93, 8, X, X, X, X, X]]
    assert table.poly_type.tolist() == ["I"]
    assert decode((92, 30, 95, 5, 70, 93, 8, X, X, X)) == [(10, 4, 255)]


def test_format_round_trip():
    codes = np.array([[7, 90, 60, 93, 5, 30, 95, 6, X, X, X, X, X], [8, X, X, X, X, X, X, X, X, X, X, X, X]])
    rows = format_polygon_codes(codes, ["I", "W"])
    assert rows[0] == POLYGON_CODES_HEADER
    assert rows[1] == "07;90;60;93;05;30;95;06;-9;-9;-9;-9;-9;05-9;I"
    parsed = parse_polygon_codes(rows)
    assert parsed.codes.tolist() == codes.tolist()


@pytest.mark.parametrize(
    "rows,message",
    [
        ([], "header"),
        (["id;CT", "1;2"], "header"),
        ([POLYGON_CODES_HEADER, "1;2;3"], "fields"),
        ([POLYGON_CODES_HEADER, "1;x;-9;-9;-9;-9;-9;-9;-9;-9;-9;-9;-9;-9;I"], "non-integer"),
    ],
)
def test_bad_code_tables(rows, message):
    with pytest.raises(PolygonCodeError, match=message):
        parse_polygon_codes(rows)


def test_rasterise_marks_missing_polygons_and_unknown_ids():
    ids = np.array([[1, 2, np.nan], [3, 2, 1]], dtype=np.float32)
    out = rasterise(ids, np.array([2, 1]), np.array([7, 4]))
    assert out.tolist() == [[4, 7, -1], [255, 7, 4]]
