"""The MLPerf Tiny models (model/mlperf.py: DS-CNN, MobileNetV1-0.25, ResNet-8, FC autoencoder)
co-simulated bit-exact on every layer from the command line, each on its own config, and their
reports. KWS (the default chip, whose Verilator build the suite shares) runs in the default suite;
all four with three inputs each in the slow set."""
import pytest
from cli_helpers import invoke


def _bit_exact(args, n):
    r = invoke("cosim", *args)
    assert r.exit_code == 0, r.output
    assert r.output.strip().splitlines()[-1] == f"bit-exact: {n}/{n} inferences", r.output
    return r.output


@pytest.mark.cosim
def test_mlperf_kws_bit_exact_on_the_default_chip():
    out = _bit_exact(["--model", "mlperf-kws", "--inputs", 1, "--seed", 3], 1)
    assert "DS-CNN" in out


@pytest.mark.slow
@pytest.mark.cosim
@pytest.mark.parametrize("name", ["mlperf-kws", "mlperf-vww", "mlperf-ic", "mlperf-ad"])
def test_every_mlperf_model_bit_exact(name):
    _bit_exact(["--model", name, "--inputs", 3], 3)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mlperf-ic", "mlperf-ad"])
def test_mlperf_report(tmp_path, name):
    r = invoke("report", name, "-o", tmp_path)
    assert r.exit_code == 0, r.output
    text = (tmp_path / "report.md").read_text()
    assert "TOPS/W per precision" in text and "random weights" in text and "Accuracy under drift" in text
