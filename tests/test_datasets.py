"""IQA dataset readers on tiny fake datasets written in each native layout."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from asymlib.errors import DatasetError, ImageReadError, InputSizeError, UnknownNameError
from asymlib.iqa.datasets import (
    FRDataset,
    NRDataset,
    PairedCenterCrop,
    PairedCompose,
    PairedRandomCrop,
    PairedResize,
    create_fr_dataset,
    create_nr_dataset,
    list_fr_datasets,
    list_nr_datasets,
)

H, W = 6, 8


def _write_image(path: Path, value: int, size: tuple[int, int] = (H, W)) -> np.ndarray:
    """Write an RGB image whose red channel is ``value`` and green a ramp; returns the uint8 array."""
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = size
    arr = np.zeros((h, w, 3), np.uint8)
    arr[..., 0] = value
    arr[..., 1] = np.arange(h * w, dtype=np.uint8).reshape(h, w)
    fmt = "BMP" if path.suffix.lower() == ".bmp" else "PNG"
    Image.fromarray(arr).save(path, format=fmt)
    return arr


def _make_kadid(root: Path) -> Path:
    images = root / "images"
    _write_image(images / "I01.png", 10)
    _write_image(images / "I02.png", 20)
    _write_image(images / "I01_01_01.png", 100)
    _write_image(images / "I01_01_02.png", 110)
    _write_image(images / "I02_01_01.png", 200)
    (root / "dmos.csv").write_text(
        "dist_img,ref_img,dmos,var\n"
        "I01_01_01.png,I01.png,4.57,0.496\n"
        "I01_01_02.png,I01.png,3.00,0.700\n"
        "I02_01_01.png,I02.png,1.25,0.100\n"
    )
    return root


def _make_tid(root: Path) -> Path:
    _write_image(root / "distorted_images" / "i01_01_1.bmp", 100)
    _write_image(root / "distorted_images" / "I25_02_1.bmp", 150)  # annotation says i25_02_1.bmp
    _write_image(root / "reference_images" / "I01.BMP", 10)
    _write_image(root / "reference_images" / "i25.bmp", 25)  # the reader asks for I25.BMP
    (root / "mos_with_names.txt").write_text("5.51429 i01_01_1.bmp\n\n4.0 i25_02_1.bmp\n")
    return root


def _make_koniq(root: Path) -> Path:
    _write_image(root / "1024x768" / "826373.png", 50)
    _write_image(root / "1024x768" / "10004473376.png", 60)
    (root / "koniq10k_scores_and_distributions.csv").write_text(
        '"image_name","c1","c2","c3","c4","c5","c_total","MOS","SD","MOS_zscore"\n'
        '"826373.png",0,0,25,73,7,105,3.828571,0.527,77.383\n'
        '"10004473376.png",0,3,45,47,1,96,3.479167,0.580,68.728\n'
    )
    return root


def _make_pair_table(root: Path, table: str) -> Path:
    _write_image(root / "reference" / "a.png", 10)
    _write_image(root / "reference" / "b.png", 20)
    _write_image(root / "dist" / "a_1.png", 100)
    _write_image(root / "dist" / "b_1.png", 200)
    (root / table).write_text(
        "dist_img,ref_img,score\n"
        "dist/a_1.png,reference/a.png,7.5\n"
        "dist/b_1.png,reference/b.png,2.0\n"
    )
    return root


# ---------------------------------------------------------------- registries


def test_registries_list_the_paper_datasets():
    assert list_fr_datasets() == sorted(["kadid10k", "tid2013", "liu13", "ma17", "tqd"])
    assert list_nr_datasets() == sorted(["koniq10k", "kadid10k"])


def test_unknown_dataset_name_lists_known_names(tmp_path):
    with pytest.raises(UnknownNameError) as fr:
        create_fr_dataset("live", tmp_path)
    assert "'live'" in str(fr.value) and "tid2013" in str(fr.value)
    with pytest.raises(UnknownNameError) as nr:
        create_nr_dataset("spaq", tmp_path)
    assert "koniq10k" in str(nr.value)


# ---------------------------------------------------------------- readers


def test_kadid_fr_records_and_items(tmp_path):
    ds = create_fr_dataset("KADID-10K", _make_kadid(tmp_path))
    assert isinstance(ds, FRDataset) and len(ds) == 3
    assert ds.name == "KADID-10K" and ds.higher_is_better and ds.score_name == "DMOS (1-5)"
    assert ds.records["score"].tolist() == pytest.approx([4.57, 3.0, 1.25])
    assert ds.records["group"].tolist() == ["I01", "I01", "I02"]
    assert ds.records["var"].tolist() == pytest.approx([0.496, 0.7, 0.1])
    assert Path(ds.records["ref"][2]) == tmp_path / "images" / "I02.png"

    item = ds[1]
    assert item["dist"].shape == (3, H, W) and item["ref"].shape == (3, H, W)
    assert item["dist"].dtype == torch.float32
    assert item["dist"][0, 0, 0].item() == pytest.approx(110 / 255)
    assert item["ref"][0, 0, 0].item() == pytest.approx(10 / 255)
    assert item["score"].dtype == torch.float32 and item["score"].shape == ()
    assert item["score"].item() == pytest.approx(3.0) and item["index"] == 1
    assert ds[-1]["index"] == 2
    with pytest.raises(IndexError):
        ds[3]

    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    assert batch["dist"].shape == (2, 3, H, W) and batch["index"].tolist() == [0, 1]
    ds.validate()


def test_kadid_nr_uses_distorted_images_with_reference_groups(tmp_path):
    ds = create_nr_dataset("kadid10k", _make_kadid(tmp_path))
    assert isinstance(ds, NRDataset) and len(ds) == 3
    assert ds.records["group"].tolist() == ["I01", "I01", "I02"]
    item = ds[2]
    assert item["image"].shape == (3, H, W) and item["image"][0, 0, 0].item() == pytest.approx(200 / 255)
    assert item["score"].item() == pytest.approx(1.25)


def test_tid2013_resolves_case_quirks(tmp_path):
    ds = create_fr_dataset("tid2013", _make_tid(tmp_path))
    assert len(ds) == 2 and ds.score_name == "MOS (0-9)" and ds.higher_is_better
    assert ds.records["score"].tolist() == pytest.approx([5.51429, 4.0])
    assert ds.records["group"].tolist() == ["I01", "I25"]
    assert Path(ds.records["dist"][1]).name == "I25_02_1.bmp"
    assert Path(ds.records["ref"][1]).name == "i25.bmp"
    assert Path(ds.records["ref"][0]).name == "I01.BMP"
    item = ds[1]
    assert item["dist"][0, 0, 0].item() == pytest.approx(150 / 255)
    assert item["ref"][0, 0, 0].item() == pytest.approx(25 / 255)


def test_tid2013_malformed_line_is_named(tmp_path):
    root = _make_tid(tmp_path)
    (root / "mos_with_names.txt").write_text("5.5 i01_01_1.bmp\nabc i25_02_1.bmp\n")
    with pytest.raises(DatasetError, match=r"mos_with_names\.txt line 2: MOS 'abc'"):
        create_fr_dataset("tid2013", root)


def test_koniq_scores_and_column_choice(tmp_path):
    root = _make_koniq(tmp_path)
    ds = create_nr_dataset("koniq10k", root)
    assert ds.score_name == "MOS_zscore (1-100)" and ds.higher_is_better
    assert ds.records["score"].tolist() == pytest.approx([77.383, 68.728])
    assert ds.records["MOS"].tolist() == pytest.approx([3.828571, 3.479167])
    assert ds[0]["image"].shape == (3, H, W)
    mos = create_nr_dataset("koniq10k", root, score_column="MOS")
    assert mos.score_name == "MOS (1-5)" and mos.records["score"][1] == pytest.approx(3.479167)
    with pytest.raises(DatasetError, match="missing column"):
        create_nr_dataset("koniq10k", root, score_column="MOS_raw")


@pytest.mark.parametrize("name,table", [("liu13", "liu13.csv"), ("ma17", "ma17.csv"), ("tqd", "tqd.csv")])
def test_pair_table_readers(tmp_path, name, table):
    ds = create_fr_dataset(name, _make_pair_table(tmp_path, table), annotation=table)
    assert len(ds) == 2 and ds.records["group"].tolist() == ["a", "b"]
    assert ds.records["score"].tolist() == pytest.approx([7.5, 2.0])
    item = ds[1]
    assert item["dist"][0, 0, 0].item() == pytest.approx(200 / 255)
    assert item["ref"][0, 0, 0].item() == pytest.approx(20 / 255)


def test_tqd_reads_its_distributed_score_list(tmp_path):
    # TQD_mos.txt as distributed: headerless "ref<TAB>dist<TAB>score" lines, paths under images/
    _write_image(tmp_path / "images" / "5-0.png", 10)
    _write_image(tmp_path / "images" / "5-1.png", 100)
    _write_image(tmp_path / "images" / "11-0.png", 20)
    _write_image(tmp_path / "images" / "11-2.png", 200)
    (tmp_path / "TQD_mos.txt").write_text("images/5-0.png\timages/5-1.png\t0.71471\n"
                                          "images/11-0.png\timages/11-2.png\t0.42\n\n")
    ds = create_fr_dataset("tqd", tmp_path)
    assert ds.records["score"].tolist() == pytest.approx([0.71471, 0.42])
    assert ds.records["group"].tolist() == ["5-0", "11-0"]
    item = ds[1]
    assert item["dist"][0, 0, 0].item() == pytest.approx(200 / 255)
    assert item["ref"][0, 0, 0].item() == pytest.approx(20 / 255)
    (tmp_path / "TQD_mos.txt").write_text("images/5-0.png\timages/5-1.png\t0.7\nimages/11-0.png\t0.4\n")
    with pytest.raises(DatasetError, match=r"TQD_mos\.txt line 2: expected 3 fields"):
        create_fr_dataset("tqd", tmp_path)
    (tmp_path / "TQD_mos.txt").write_text("images/5-0.png images/5-1.png high\n")
    with pytest.raises(DatasetError, match=r"TQD_mos\.txt line 1: score 'high'"):
        create_fr_dataset("tqd", tmp_path)


def test_pair_table_from_mat_file(tmp_path):
    from scipy.io import savemat

    root = _make_pair_table(tmp_path, "unused.csv")
    savemat(root / "ma17.mat", {
        "dist_img": np.array(["dist/a_1.png", "dist/b_1.png"], dtype=object),
        "ref_img": np.array(["reference/a.png", "reference/b.png"], dtype=object),
        "score": np.array([6.25, 1.5]),
    })
    ds = create_fr_dataset("ma17", root, annotation="ma17.mat")
    assert ds.records["score"].tolist() == pytest.approx([6.25, 1.5])
    assert ds.records["group"].tolist() == ["a", "b"]
    savemat(root / "bad.mat", {"dist_img": np.array(["dist/a_1.png"], dtype=object), "score": np.array([1.0])})
    with pytest.raises(DatasetError, match=r"bad\.mat: missing variable\(s\) \['ref_img'\]"):
        create_fr_dataset("ma17", root, annotation="bad.mat")


def test_subset_keeps_metadata(tmp_path):
    ds = create_fr_dataset("kadid10k", _make_kadid(tmp_path), transform=PairedCenterCrop(4))
    sub = ds.subset([2, 0])
    assert len(sub) == 2 and len(ds) == 3
    assert sub.records["score"].tolist() == pytest.approx([1.25, 4.57])
    assert sub.name == ds.name and sub.transform is ds.transform
    item = sub[0]
    assert item["index"] == 0 and item["dist"].shape == (3, 4, 4)
    assert len(ds.subset(np.array([True, False, True]))) == 2


# ---------------------------------------------------------------- errors


def test_missing_root_folder(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(DatasetError, match="dataset root folder not found") as exc:
        create_fr_dataset("kadid10k", missing)
    assert str(missing) in str(exc.value)


def test_missing_annotation_file(tmp_path):
    root = _make_kadid(tmp_path)
    (root / "dmos.csv").unlink()
    with pytest.raises(DatasetError, match="annotation file not found") as exc:
        create_fr_dataset("kadid10k", root)
    assert str(root / "dmos.csv") in str(exc.value)


def test_missing_image_folder(tmp_path):
    root = _make_tid(tmp_path)
    for p in (root / "reference_images").iterdir():
        p.unlink()
    (root / "reference_images").rmdir()
    with pytest.raises(DatasetError, match="reference image folder not found"):
        create_fr_dataset("tid2013", root)


def test_csv_missing_column(tmp_path):
    root = _make_kadid(tmp_path)
    (root / "dmos.csv").write_text("dist_img,ref_img,var\nI01_01_01.png,I01.png,0.4\n")
    with pytest.raises(DatasetError, match=r"dmos\.csv: missing column\(s\) \['dmos'\]"):
        create_fr_dataset("kadid10k", root)


def test_csv_non_numeric_score_names_line(tmp_path):
    root = _make_kadid(tmp_path)
    (root / "dmos.csv").write_text(
        "dist_img,ref_img,dmos,var\nI01_01_01.png,I01.png,4.5,0.4\nI01_01_02.png,I01.png,good,0.4\n"
    )
    with pytest.raises(DatasetError, match=r"dmos\.csv line 3: column 'dmos' has value 'good'"):
        create_fr_dataset("kadid10k", root)


def test_missing_image_is_listed(tmp_path):
    root = _make_kadid(tmp_path)
    (root / "images" / "I01_01_02.png").unlink()
    with pytest.raises(DatasetError, match="1 of 5 image files") as exc:
        create_fr_dataset("kadid10k", root)
    assert str(root / "images" / "I01_01_02.png") in str(exc.value)
    assert "dmos.csv" in str(exc.value)


def test_corrupt_image_named_by_validate_and_getitem(tmp_path):
    root = _make_kadid(tmp_path)
    bad = root / "images" / "I02_01_01.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    ds = create_fr_dataset("kadid10k", root)  # construction does not decode
    ds.validate(decode=False)
    with pytest.raises(DatasetError, match="1 problem") as exc:
        ds.validate()
    assert str(bad) in str(exc.value)
    ds[0]
    with pytest.raises(ImageReadError) as exc2:
        ds[2]
    assert str(bad) in str(exc2.value)


def test_validate_reports_size_mismatch(tmp_path):
    root = _make_kadid(tmp_path)
    _write_image(root / "images" / "I02_01_01.png", 200, size=(H, W + 2))
    with pytest.raises(DatasetError, match="differs from its reference"):
        create_fr_dataset("kadid10k", root).validate()


# ---------------------------------------------------------------- paired transforms


def test_paired_random_crop_same_window_and_deterministic():
    img = torch.rand(3, 20, 30, generator=torch.Generator().manual_seed(0))
    crop = PairedRandomCrop(8, generator=torch.Generator().manual_seed(1))
    windows = []
    for _ in range(5):
        d, r = crop(img, img.clone())
        assert d.shape == r.shape == (3, 8, 8)
        assert torch.equal(d, r)
        windows.append(d)
    assert any(not torch.equal(windows[0], w) for w in windows[1:])
    again = PairedRandomCrop(8, seed=1)
    other = PairedRandomCrop(8, generator=torch.Generator().manual_seed(1))
    for w in windows:
        assert torch.equal(other(img, img)[0], w)
    assert torch.equal(again(img, img)[0], windows[0])


def test_paired_random_crop_uses_same_offsets_for_different_contents():
    ramp = torch.arange(20 * 30, dtype=torch.float32).reshape(1, 20, 30).expand(3, -1, -1)
    d, r = PairedRandomCrop((5, 7), seed=3)(ramp, ramp + 1000)
    assert torch.equal(r - 1000, d) and d.shape == (3, 5, 7)


def test_crop_larger_than_image_errors():
    img = torch.zeros(3, 6, 8)
    with pytest.raises(InputSizeError, match=r"crop size \(10, 10\).*\(6, 8\)"):
        PairedRandomCrop(10, seed=0)(img, img)
    with pytest.raises(InputSizeError, match="larger than the image"):
        PairedCenterCrop(7)(img, img)
    with pytest.raises(InputSizeError, match="sizes differ"):
        PairedCenterCrop(4)(img, torch.zeros(3, 6, 9))


def test_center_crop_and_resize():
    img = torch.arange(6 * 8, dtype=torch.float32).reshape(1, 6, 8).expand(3, -1, -1) / 48
    d, r = PairedCenterCrop(4)(img, img)
    assert torch.equal(d, img[:, 1:5, 2:6]) and torch.equal(d, r)
    assert PairedCenterCrop(4)(img).shape == (3, 4, 4)

    d, r = PairedResize(3)(img, img)
    assert d.shape == r.shape == (3, 3, 4) and torch.equal(d, r)
    assert 0.0 <= d.min() and d.max() <= 1.0
    tall = torch.rand(3, 10, 4)
    assert PairedResize(2)(tall).shape == (3, 5, 2)
    assert PairedResize(4)(tall) is tall

    pipe = PairedCompose([PairedResize(12), PairedRandomCrop(6, seed=0)])
    d, r = pipe(torch.rand(3, 24, 30), torch.rand(3, 24, 30))
    assert d.shape == r.shape == (3, 6, 6)


def test_duplicate_rows_are_rejected_naming_both_lines(tmp_path):
    root = _make_kadid(tmp_path / "kadid")
    with open(root / "dmos.csv", "a") as fh:
        fh.write("I01_01_02.png,I01.png,4.10,0.700\n")  # line 5 repeats line 3 with another score
    with pytest.raises(DatasetError, match=r"dmos\.csv lines 3 and 5: 'I01_01_02\.png' is listed twice, with "
                                           r"conflicting scores 3\.0 and 4\.1"):
        create_fr_dataset("kadid10k", root)
    tid = _make_tid(tmp_path / "tid")
    (tid / "mos_with_names.txt").write_text("5.5 i01_01_1.bmp\n4.0 i25_02_1.bmp\n5.5 I01_01_1.BMP\n")
    with pytest.raises(DatasetError, match=r"lines 1 and 3: 'i01_01_1\.bmp' is listed twice, with the same score"):
        create_fr_dataset("tid2013", tid)
    pairs = _make_pair_table(tmp_path / "liu", "liu13.csv")
    with open(pairs / "liu13.csv", "a") as fh:
        fh.write("dist/a_1.png,reference/a.png,1.0\n")
    with pytest.raises(DatasetError, match="lines 2 and 4"):
        create_fr_dataset("liu13", pairs)


def test_tid2013_annotation_with_a_bom_reads_like_the_csv_readers(tmp_path):
    root = _make_tid(tmp_path / "tid")
    text = (root / "mos_with_names.txt").read_text()
    (root / "mos_with_names.txt").write_bytes(b"\xef\xbb\xbf" + text.encode())
    ds = create_fr_dataset("tid2013", root)
    assert list(ds.records["score"]) == [5.51429, 4.0]
