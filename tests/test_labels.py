"""Labels CSVs as spreadsheets and pandas write them: BOM, CRLF, 1.0 / 0.0, empty cells."""

from __future__ import annotations

import pytest

from mgmt_audit.data.description import read_labels
from mgmt_audit.errors import CohortError


def test_excel_bom_and_crlf_are_read(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_bytes("\ufeffBraTS21ID,MGMT_value\r\n00002,1\r\n5,0\r\n".encode("utf-8"))
    assert read_labels(path).labels == {"00002": 1, "00005": 0}


def test_pandas_float_labels_are_read(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("BraTS21ID,MGMT_value\n2,1.0\n3,0.0\n4,1\n")
    assert read_labels(path).labels == {"00002": 1, "00003": 0, "00004": 1}


def test_an_empty_label_cell_is_unlabelled_and_recorded(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("BraTS21ID,MGMT_value\n2,1\n3,\n4, \n")
    table = read_labels(path)
    assert table.labels == {"00002": 1} and table.unlabelled == ("00003", "00004")


@pytest.mark.parametrize("label", ["2", "0.5", "yes", "-1"])
def test_a_label_that_is_not_0_or_1_names_its_line(tmp_path, label):
    path = tmp_path / "labels.csv"
    path.write_text(f"BraTS21ID,MGMT_value\n2,1\n3,{label}\n")
    with pytest.raises(CohortError, match=f"line 3: label '{label}' is not 0 or 1"):
        read_labels(path)


def test_a_missing_column_message_has_no_invisible_characters(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_bytes("\ufeffid,MGMT_value\r\n2,1\r\n".encode("utf-8"))
    with pytest.raises(CohortError) as info:
        read_labels(path)
    assert "['id', 'MGMT_value']" in str(info.value) and "\ufeff" not in str(info.value)
