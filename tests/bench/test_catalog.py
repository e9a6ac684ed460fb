"""bench_catalog writes the store it says and measures a catalog that sees all of it."""

from bench import bench_catalog
from runengine.callbacks.catalog import Catalog


def test_the_store_holds_whole_runs_and_the_measure_counts_them(tmp_path):
    bench_catalog.write_store(str(tmp_path), 40)
    bench_catalog.write_store(str(tmp_path), 50)  # tops up, does not start over
    for index in (False, True):
        result = bench_catalog.measure(str(tmp_path), repeats=1, index=index)
        assert (result["runs"], result["hits"], result["other_hits"]) == (
            50,
            25,
            9 + 1,
        )  # scan_ids 41..50
    catalog = Catalog(tmp_path)
    assert catalog.corrupt == {}
    last = catalog[-1]
    assert last.complete and last.start["scan_id"] == 50
    assert last.primary.read()["det"].values.tolist() == [0.0, 1.0, 2.0]
