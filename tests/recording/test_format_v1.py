"""The version-1 file kept in tests/data must stay readable by every later
reader, with the same structure and values."""

from pathlib import Path

import numpy as np

from cortexsim.recording import open_recording

V1 = Path(__file__).resolve().parents[1] / "data" / "recording_v1.h5"

SHAPES = {
    "all.alignment": (8, 2),
    "area1.activity": (8, 4, 8),
    "area1.b_ff.update": (2, 8),
    "area1.error": (8, 4, 8),
    "area2.W_ff.weights": (4, 8, 10),
    "energy": (8, 6),
    "loss.metric": (8,),
}
# Sums of the stored values, written down when the file was made.
SUMS = {
    "all.alignment": 200.86477661132812,
    "area1.activity": 8.351369857788086,
    "area1.b_ff.update": 0.18039345741271973,
    "area1.error": -7.569281578063965,
    "area2.W_ff.weights": -13.25889778137207,
    "energy": 34.081214904785156,
    "loss.metric": 7.7766642570495605,
}


def test_version_1_file_reads_with_its_structure_and_values():
    with open_recording(V1) as rec:
        assert rec.format_version == 1 and rec.status == "complete"
        assert rec.attrs["rule"] == "predictive_coding" and rec.attrs["backend"] == "numpy"
        assert rec.config["model"]["areas"][1]["size"] == 8
        assert "python" in rec.environment
        assert sorted(rec.probes) == sorted(SHAPES)
        for name, shape in SHAPES.items():
            probe = rec[name]
            assert probe.to_numpy().shape == shape, name
            assert np.isclose(float(probe.to_numpy().sum()), SUMS[name], rtol=1e-6), name
        weights = rec["area2.W_ff.weights"]
        np.testing.assert_array_equal(weights.step, [0, 2, 4, 6])
        np.testing.assert_array_equal(rec["area1.b_ff.update"].epoch, [0, 1])
        assert rec["area1.activity"].dims == ["time", "sample", "unit"]
        np.testing.assert_array_equal(rec.metrics["epoch"], [1, 2])
        assert set(rec.metrics) == {"epoch", "train_loss", "energy", "test_accuracy"}
