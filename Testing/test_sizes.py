"""Size expressions -> millimetres."""

import pytest

from rsuper.report.sizes import find_sizes


@pytest.mark.parametrize(
    "text, sizes, kind",
    [
        ("a 3.2 x 2.1 cm mass", [[32.0, 21.0]], "dims"),
        ("3.2 cm x 2.1 cm x 1 cm", [[32.0, 21.0, 10.0]], "dims"),
        ("21 x 32mm", [[32.0, 21.0]], "dims"),
        ("3 by 2 centimeters", [[30.0, 20.0]], "dims"),
        ("ranging from 5 to 12 mm", [[12.0]], "range"),
        ("5-12 mm", [[12.0]], "range"),
        ("measuring 8 and 5 mm", [[8.0], [5.0]], "list"),
        ("1.2, 0.9 and 0.5 cm", [[12.0], [9.0], [5.0]], "list"),
        ("a 2.3-cm cyst", [[23.0]], "single"),
        ("decreased from 20 to 15 mm", [[15.0]], "change"),
        ("increased in size from 1.5 to 2.3 cm", [[23.0]], "change"),
    ],
)
def test_size_forms(text, sizes, kind):
    found = find_sizes(text)
    assert len(found) == 1
    assert found[0].sizes_mm == sizes and found[0].kind == kind
    assert text[found[0].start:found[0].end].strip()


def test_numbers_without_units_are_not_sizes():
    assert find_sizes("segment 7, LR-5, 3 x 2, 45 HU, 01/15/2024") == []
