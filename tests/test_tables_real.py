"""Tables as they really are (issue 24): Parquet with gaps, dates, lists and dictionary columns;
categories spelt with '_'; --categorical added to detection; numbers in another locale; gaps
in the target; the default imputation; what predict and evaluate say. Real files, written
with pandas and pyarrow, through the command as a user runs it (``cli.main`` in process)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from betaprop import cli
from betaprop.files.datasets import DataError, from_frame, read_csv
from betaprop.files.model import read_model

QUICK = ["--epochs", "3", "--hidden", "4"]  # not --quiet: the notes are what is tested


def _penguins(n: int = 120, seed: int = 0) -> pd.DataFrame:
    """A penguins-like table: text categories with '_', numbers with gaps, a text target."""
    rng = np.random.default_rng(seed)
    island = rng.choice(["Biscoe", "Dream", "Torgersen_Island"], n)
    bill = rng.normal(44, 5, n)
    flipper = rng.normal(200, 14, n)
    bill[::11] = np.nan
    species = np.where(bill > 44, "Gentoo_penguin", "Adelie")
    species[np.isnan(bill)] = "Adelie"
    sex = pd.array(rng.choice(["male", "female"], n), dtype=object)
    sex[::13] = None
    return pd.DataFrame(
        {"island": island, "bill": bill, "flipper": flipper, "sex": sex, "species": species}
    )


def _train(tmp_path: Path, data: Path, *options: str) -> int:
    return cli.main(["train", "--data", str(data), "--out", str(tmp_path / "run"), *QUICK,
                     *options])  # fmt: skip


def _model(tmp_path: Path) -> str:
    return str(tmp_path / "run" / "model.safetensors")


# ----------------------------------------------------------------------------- Parquet
def test_parquet_with_gaps_trains_predicts_and_evaluates(tmp_path, capsys):
    frame = _penguins()
    path = tmp_path / "penguins.parquet"
    frame.to_parquet(path)
    assert _train(tmp_path, path) == 0
    err = capsys.readouterr().err
    assert "not a UTF-8" not in err and "filled" in err and "median" in err
    new = frame.drop(columns="species").iloc[:7]
    new.to_parquet(tmp_path / "new.parquet")
    assert cli.main(["predict", _model(tmp_path), str(tmp_path / "new.parquet")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "prediction" and len(out) == 8
    assert cli.main(["evaluate", _model(tmp_path), str(path)]) == 0
    assert "accuracy" in capsys.readouterr().out


def test_parquet_gap_refused_by_row_not_as_text(tmp_path):
    path = tmp_path / "gaps.parquet"
    pd.DataFrame({"a": [1.0, None, 3.0], "y": ["u", "v", "u"]}).to_parquet(path)
    with pytest.raises(DataError, match=r"gaps.parquet row 1, column 'a': missing value"):
        read_csv(str(path))


def test_parquet_dates_become_seconds_since_1970(tmp_path):
    path = tmp_path / "dates.parquet"
    when = pd.to_datetime(["1970-01-02", None, "2020-01-01", "1970-01-01 00:00:01"],
                          format="ISO8601")  # fmt: skip
    zoned = when.tz_localize("Europe/Paris")
    frame = pd.DataFrame({"t": when, "z": zoned, "d": pd.to_timedelta([1, 2, None, 4], "s"),
                          "y": ["u", "v", "u", "v"]})  # fmt: skip
    frame.to_parquet(path)
    data = read_csv(str(path), allow_missing=True)
    np.testing.assert_array_equal(data.X[[0, 2, 3], 0], [86400.0, 1577836800.0, 1.0])
    assert np.isnan(data.X[1, 0])
    assert data.X[0, 1] == 86400.0 - 3600.0  # Paris is UTC+1 in January
    np.testing.assert_array_equal(data.X[[0, 1, 3], 2], [1.0, 2.0, 4.0])
    assert any("date columns ['t', 'z', 'd']" in note for note in data.notes)


def test_parquet_list_and_struct_columns_are_refused_by_name(tmp_path):
    path = tmp_path / "lists.parquet"
    pq.write_table(pa.table({"lst": [[9, 10], [1]], "y": ["u", "v"]}), path)
    with pytest.raises(DataError, match=r"column 'lst' holds list<.*not numbers or text"):
        read_csv(str(path))
    frame = pd.DataFrame({"lst": [np.array([9, 10]), np.array([1])], "y": ["u", "v"]})
    with pytest.raises(DataError, match=r"column 'lst' holds ndarray values"):
        from_frame(frame)


def test_parquet_dictionary_columns_are_categories(tmp_path):
    path = tmp_path / "dictionary.parquet"
    table = pa.table({
        "city": pa.array(["Paris", None, "Nice", "Paris"]).dictionary_encode(),
        "x": [1.0, 2.0, 3.0, 4.0],
        "y": ["u", "v", "u", "v"],
    })  # fmt: skip
    pq.write_table(table, path)
    data = read_csv(str(path), allow_missing=True)
    assert data.categorical == ["city"]
    assert data.frame["city"].isna().tolist() == [False, True, False, False]
    frame = pd.DataFrame({"grade": pd.Categorical([4, 5, 4, 5]), "x": [1.0, 2, 3, 4],
                          "y": ["u", "v", "u", "v"]})  # fmt: skip
    data = from_frame(frame)  # pandas' category dtype: a category, whatever its values
    assert data.categorical == ["grade"] and list(data.frame["grade"]) == ["4", "5", "4", "5"]


# ----------------------------------------------------------------------------- detection
def test_categories_with_underscores_are_detected(tmp_path):
    path = tmp_path / "cities.csv"
    path.write_text("city,level,x,y\nNew_York,level_4,1,a\nSan_Francisco,level_2,2,b\n"
                    "New_York,level_4,3,a\n")  # fmt: skip
    data = read_csv(str(path))
    assert data.categorical == ["city", "level"]
    with pytest.raises(DataError, match=r"line 3, column 'x': '1_000' is not a number"):
        path.write_text("x,y\n1,a\n1_000,b\n")
        read_csv(str(path))


def test_categorical_adds_to_detection(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_text("code,island,x,y\n4.0,Biscoe,1,a\n4,Dream,2,b\n5,Biscoe,3,a\n")
    data = read_csv(str(path), categorical=["code"])
    assert data.categorical == ["code", "island"]
    assert list(data.frame["code"]) == ["4", "4", "5"]  # "4.0" and "4" one category


def test_locale_numbers_are_refused_naming_the_option_then_read_with_it(tmp_path):
    comma = tmp_path / "comma.csv"
    comma.write_text("x;z;y\n1,37;a;u\n2,5;b;v\n-0,25;a;u\n")
    with pytest.raises(DataError, match=r"column 'x' looks like numbers .*'1,37'.*--decimal ','"):
        read_csv(str(comma), sep=";")
    np.testing.assert_array_equal(read_csv(str(comma), sep=";", decimal=",").X[:, 0],
                                  [1.37, 2.5, -0.25])  # fmt: skip
    thousands = tmp_path / "thousands.csv"
    thousands.write_text('x,z,y\n"1,205",a,u\n"12,500",b,v\n300,a,u\n')
    with pytest.raises(DataError, match=r"column 'x' .*'1,205'.*--thousands ','"):
        read_csv(str(thousands))
    np.testing.assert_array_equal(read_csv(str(thousands), thousands=",").X[:, 0],
                                  [1205.0, 12500.0, 300.0])  # fmt: skip
    both = tmp_path / "both.csv"
    both.write_text("x;y\n1.205,5;u\n2.000,25;v\n")
    with pytest.raises(DataError, match=r"--thousands '\.' --decimal ','"):
        read_csv(str(both), sep=";")
    np.testing.assert_array_equal(read_csv(str(both), sep=";", decimal=",", thousands=".").X[:, 0],
                                  [1205.5, 2000.25])  # fmt: skip


@pytest.mark.parametrize("thousands", [None, "."])
def test_locale_numbers_with_a_gap_read_as_pandas_reads_them(tmp_path, thousands):
    # a gap leaves the column as text to pandas' parser (no NaN guessing): read it in the
    # locale given all the same; the oracle is pandas reading the file with its own NaNs
    path = tmp_path / "gap.csv"
    path.write_text("x;z;y\n1.205,37;a;u\n;b;v\n-0,25;a;u\n2,5;b;v\n" if thousands else
                    "x;z;y\n1,37;a;u\n;b;v\n-0,25;a;u\n2,5;b;v\n")  # fmt: skip
    want = pd.read_csv(path, sep=";", decimal=",", thousands=thousands)["x"].to_numpy()
    got = read_csv(str(path), sep=";", decimal=",", thousands=thousands, allow_missing=True)
    np.testing.assert_array_equal(got.X[:, 0], want)
    assert "x" not in got.categorical
    stray = tmp_path / "stray.csv"  # a point that is neither mark: not a number, as to pandas
    stray.write_text("x;y\n1.37;u\n;v\n2,5;u\n")
    with pytest.raises(DataError, match=r"line 2, column 'x': '1.37' is not a number"):
        read_csv(str(stray), sep=";", decimal=",", allow_missing=True)


def test_locale_options_in_the_command(tmp_path, capsys):
    rng = np.random.default_rng(1)
    rows = [f"{v:.2f}".replace(".", ",") + f";{'ab'[i % 2]}" for i, v in enumerate(rng.random(40))]
    path = tmp_path / "comma.csv"
    path.write_text("x;y\n" + "\n".join(rows) + "\n")
    assert _train(tmp_path, path, "--sep", ";") != 0
    assert "--decimal ','" in capsys.readouterr().err
    assert _train(tmp_path, path, "--sep", ";", "--decimal", ",") == 0
    assert cli.main(["evaluate", _model(tmp_path), str(path), "--sep", ";", "--decimal", ","]) == 0


def test_na_values_mark_sentinels_as_gaps(tmp_path):
    path = tmp_path / "sentinel.csv"
    path.write_text("a,b,y\n1,unknown,u\n-999,2,v\n3,4,u\n")
    data = read_csv(str(path), na_values=["unknown", "-999"], allow_missing=True)
    assert np.isnan(data.X[1, 0]) and np.isnan(data.X[0, 1]) and data.X[2].tolist() == [3, 4]


# ----------------------------------------------------------------------------- frictions
def test_rows_without_a_target_are_left_out_with_a_note(tmp_path, capsys):
    frame = _penguins()
    frame.loc[[3, 9], "species"] = None
    path = tmp_path / "untargeted.csv"
    frame.to_csv(path, index=False)
    assert _train(tmp_path, path) == 0
    assert "2 of 120 rows have no value in the target 'species': left out" in (
        capsys.readouterr().err
    )


def test_predict_and_evaluate_never_suggest_impute(tmp_path, capsys):
    path = tmp_path / "numbers.csv"
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.random(40), "b": rng.random(40), "y": ["u", "v"] * 20})
    frame.to_csv(path, index=False)
    assert _train(tmp_path, path) == 0
    (tmp_path / "gap.csv").write_text("a,b,y\n0.5,,u\n")
    capsys.readouterr()
    for command in (["predict"], ["evaluate"]):
        assert cli.main([*command, _model(tmp_path), str(tmp_path / "gap.csv")]) != 0
        err = capsys.readouterr().err
        assert "missing value" in err and "train again with --impute median" in err
        assert "give --impute" not in err and "leave out --impute" not in err


def test_default_imputation_is_saved_and_fills_gaps_at_predict(tmp_path, capsys):
    path = tmp_path / "penguins.csv"
    _penguins().to_csv(path, index=False)
    assert _train(tmp_path, path) == 0
    assert "--impute none refuses them" in capsys.readouterr().err
    prep = read_model(_model(tmp_path)).metadata["preprocessing"]
    assert prep["impute"] == "median" and set(prep["fill"]) == {"bill", "flipper", "island", "sex"}
    (tmp_path / "new.csv").write_text("island,bill,flipper,sex\nDream,,,\n")
    assert cli.main(["predict", _model(tmp_path), str(tmp_path / "new.csv")]) == 0
    assert _train(tmp_path, path, "--impute", "none", "--force") != 0
    assert "missing value" in capsys.readouterr().err


def test_evaluate_reports_unseen_categories(tmp_path, capsys):
    path = tmp_path / "penguins.csv"
    frame = _penguins()
    frame.to_csv(path, index=False)
    assert _train(tmp_path, path) == 0
    frame.loc[:5, "island"] = "Atlantis"
    frame.to_csv(tmp_path / "new.csv", index=False)
    capsys.readouterr()
    assert cli.main(["evaluate", _model(tmp_path), str(tmp_path / "new.csv")]) == 0
    assert "column 'island' has categories training did not see (Atlantis)" in (
        capsys.readouterr().err
    )


def test_notes_on_many_levels_empty_columns_and_the_task(tmp_path, capsys):
    rng = np.random.default_rng(2)
    n = 80
    frame = pd.DataFrame({
        "name": [f"car_{i}" for i in range(n)],  # an identifier: 80 levels
        "empty": [None] * n,
        "x": rng.random(n),
        "count": rng.integers(0, 5, n),
    })  # fmt: skip
    path = tmp_path / "cars.csv"
    frame.to_csv(path, index=False)
    data = read_csv(str(path))
    assert "empty" not in data.feature_names and data.feature_names == ["name", "x"]
    assert any("columns ['empty'] have no value in any row: left out" in n for n in data.notes)
    assert any("warning: column 'name' has 80 distinct values" in n for n in data.notes)
    assert _train(tmp_path, path) == 0
    err = capsys.readouterr().err
    assert "--drop name" in err
    assert "task classification (target 'count': its 5 distinct values are integers" in err
    assert "--task regression chooses the other" in err


def test_class_weight_balanced_and_the_minority_warning(tmp_path, capsys):
    rng = np.random.default_rng(3)
    n = 400
    x = rng.normal(size=(n, 2))
    y = np.where(np.arange(n) % 50 == 0, "rare", "common")  # 2 % of the rows
    path = tmp_path / "rare.csv"
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": y}).to_csv(path, index=False)
    assert _train(tmp_path, path, "--test-fraction", "0", "--val-fraction", "0") == 0
    assert "a class is rare and mostly missed; --class-weight balanced" in capsys.readouterr().err
    assert _train(tmp_path, path, "--class-weight", "balanced", "--force") == 0
    from betaprop.cli.training import class_weights
    from betaprop.files.preprocessing import Preprocessing

    class Args:
        class_weight = "balanced"

    data = read_csv(str(path))
    rows = np.arange(n)
    w = class_weights(Args(), Preprocessing.fit(data, rows=rows), data, rows)
    assert w is not None
    np.testing.assert_allclose(w[y == "rare"], n / (2 * 8))
    np.testing.assert_allclose(w[y == "common"], n / (2 * 392))


def test_predict_reads_a_pipe(tmp_path, capsys):
    import subprocess
    import sys

    path = tmp_path / "penguins.csv"
    frame = _penguins()
    frame.to_csv(path, index=False)
    assert _train(tmp_path, path) == 0
    capsys.readouterr()
    assert cli.main(["predict", _model(tmp_path), str(path)]) == 0
    expected = capsys.readouterr().out
    script = Path(sys.executable).with_name("betaprop")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "betaprop.cli"]
    piped = subprocess.run([*command, "predict", _model(tmp_path), "-"], input=path.read_bytes(),
                           capture_output=True, timeout=300)  # fmt: skip
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.decode() == expected


@pytest.mark.parametrize("chunk", [3, 4 * 1024**2])
def test_gaps_need_no_pure_python_rescan_unless_a_row_may_be_short(tmp_path, monkeypatch, chunk):
    import betaprop.files.reading as reading

    monkeypatch.setattr(reading, "RAGGED_CHUNK", chunk)
    path = tmp_path / "gaps.csv"
    path.write_text("a,b,c,y\n1,,x,u\n2,5,,v\n\n3,NA,z,u\r\n4,6,x,v")
    strict = reading.read_rows

    def no_rescan(*args, **kwargs):
        raise AssertionError("the strict reader re-read a file without short rows")

    monkeypatch.setattr(reading, "read_rows", no_rescan)
    data = read_csv(str(path), allow_missing=True)
    assert np.isnan(data.X[:, 1]).tolist() == [True, False, True, False]
    assert len(data.X) == 4
    monkeypatch.setattr(reading, "read_rows", strict)
    for text, line in [("a,b,c,y\n1,,x,u\n2,5\n", 3), ('a,b,c,y\n"1",,x,u\n2,5,x\n', 3)]:
        path.write_text(text)
        with pytest.raises(DataError, match=rf"line {line} has \d fields, but the header has 4"):
            read_csv(str(path), allow_missing=True)


def test_a_model_file_with_float_codes_still_reads_whole_numbers():
    from betaprop.files.preprocessing import Preprocessing

    old = Preprocessing.from_dict({
        "feature_names": ["x", "code=4.0", "code=5.0"], "mean": [0.0, 0.0, 0.0],
        "scale": [1.0, 1.0, 1.0], "task": "regression", "target_name": "y", "classes": None,
        "target_mean": 0.0, "target_scale": 1.0, "columns": ["x", "code"],
        "categories": {"code": ["4.0", "5.0"]},
    })  # fmt: skip
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "code": ["4", "5.0", "4.0"]})
    np.testing.assert_array_equal(old.transform(frame), [[1, 1, 0], [2, 0, 1], [3, 1, 0]])
    assert old.unseen == {}
