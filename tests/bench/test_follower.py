"""bench_follower fills the store it says and exports every run it wrote."""

from bench import bench_follower


def test_the_export_measure_exports_every_document(tmp_path):
    assert bench_follower.fill_store(str(tmp_path), 2, 3) == 2 * (3 + 3)  # start, desc, stop
    rate = bench_follower.export_rate(runs=3, events=2)  # asserts every run went in
    assert rate["documents"] == 3 * (2 + 3) and rate["docs_per_s"] > 0
