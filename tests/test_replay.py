"""The weight-replaying external-memory binary matrix unit (hw/rtl/hdl/bnn_mvtu_replay.sv) against
its reference model: random maps, weights and thresholds, random gaps on the map and weight streams
(the weight stream stands for DDR reads of random latency) and random output back-pressure."""
import numpy as np
import pytest

from bdnn_hw.rtl import replay
from bdnn_hw.rtl.replay import ReplayShape

CONV = ReplayShape(c=16, ifm_dim=5, k=3, ofm_dim=3, mh=8, simd=4, pe=2, batch=3)
FC = ReplayShape(c=48, ifm_dim=1, k=1, ofm_dim=1, mh=12, simd=8, pe=3, batch=2)


def _case(s: ReplayShape, batches: int, seed: int):
    rng = np.random.default_rng(seed)
    n = batches * s.batch
    maps = rng.integers(0, 2, (n, s.ifm_dim, s.ifm_dim, s.c), dtype=np.uint8)
    if s.k > 1:  # zero padding, as FMPadding delivers it
        maps[:, 0, :, :] = maps[:, -1, :, :] = maps[:, :, 0, :] = maps[:, :, -1, :] = 0
    weights = rng.integers(0, 2, (s.mh, s.mw), dtype=np.uint8)
    # thresholds around the median popcount, and the clipped extremes (never / always fire)
    thr = rng.integers(s.mw // 2 - 3, s.mw // 2 + 4, s.mh)
    thr[0], thr[-1] = -5, s.mw + 9
    return maps, weights, thr


def _simulate(s, maps, weights, thr, work, stall=0, seed=0, weight_words=None):
    from bdnn_hw.rtlsim.harness import simulate
    u = replay.unit(s, work, thr)
    n = len(maps)
    w = replay.pack_weights(weights, s) if weight_words is None else weight_words
    r = simulate(u, [replay.pack_maps(maps, s), np.tile(w, (n // s.batch, 1))],
                 [n * s.ofm_dim ** 2 * s.nf], stall_in=stall, stall_out=stall, seed=seed)
    return replay.unpack_outputs(r.outputs[0], n, s), r


@pytest.mark.parametrize("s", [CONV, FC], ids=["conv3x3", "fc"])
def test_replay_unit_equals_its_model_under_random_stalls(s, tmp_path):
    maps, weights, thr = _case(s, batches=3, seed=1)
    want = replay.reference(maps, weights, thr, s)
    assert 0.2 < want.mean() < 0.8 and want[..., 0].all() and not want[..., -1].any()
    for stall, seed in ((0, 0), (35, 3)):
        got, r = _simulate(s, maps, weights, thr, tmp_path, stall, seed)
        np.testing.assert_array_equal(got, want)
        if stall == 0:  # compute-bound: the batches' steps back to back, plus filling the first
            fill = s.batch * s.ifm_dim ** 2 * s.cf
            assert 3 * s.cycles_per_batch <= r.cycles <= 3 * s.cycles_per_batch + fill + 2 * s.windows_per_batch * s.nf + 20, \
                (r.cycles, s.cycles_per_batch)


def test_a_wrong_weight_word_is_caught(tmp_path):
    s = CONV
    maps, weights, thr = _case(s, batches=1, seed=2)
    words = replay.pack_weights(weights, s).copy()
    words[s.sf + 5, 0] ^= (1 << s.w_width) - 1  # one word of the DDR stream (rows 2, 3) inverted
    got, _ = _simulate(s, maps, weights, thr, tmp_path, weight_words=words)
    assert not np.array_equal(got, replay.reference(maps, weights, thr, s))


def test_shape_errors_are_clear():
    with pytest.raises(ValueError, match="SIMD 5 must divide"):
        ReplayShape(c=16, ifm_dim=5, k=3, ofm_dim=3, mh=8, simd=5, pe=2, batch=1)
    with pytest.raises(ValueError, match="ifm_dim 6 must be"):
        ReplayShape(c=16, ifm_dim=6, k=3, ofm_dim=3, mh=8, simd=4, pe=2, batch=1)


def test_ddr_traffic_is_the_matrix_once_per_batch():
    block4_conv2 = ReplayShape(c=512, ifm_dim=7, k=3, ofm_dim=5, mh=512, simd=64, pe=8, batch=5)
    finn_external = block4_conv2.weight_bits / 8 * 25  # FINN: the matrix once per output pixel
    assert finn_external / block4_conv2.ddr_bytes_per_crop() == 125
    assert block4_conv2.cycles_per_batch == 5 * 25 * 4608 * 512 // (64 * 8)
