import torch

from quantsurvey.data.augment import augment_batch, random_hflip, random_translate
from quantsurvey.data.sampler import EpochBatchSampler


def _epoch(sampler, epoch):
    sampler.set_epoch(epoch)
    return torch.cat(list(sampler))


def test_order_depends_only_on_seed_and_epoch():
    idx = torch.arange(100, 200)
    a, b = EpochBatchSampler(idx, 32, True, seed=3), EpochBatchSampler(idx, 32, True, seed=3)
    assert torch.equal(_epoch(a, 5), _epoch(b, 5))  # a resumed run sees the same epoch 5
    assert not torch.equal(_epoch(a, 5), _epoch(a, 6))
    assert sorted(_epoch(a, 2).tolist()) == idx.tolist()  # a permutation: every sample once
    assert len(a) == 4 and [len(x) for x in a] == [32, 32, 32, 4]


def test_eval_order_is_fixed_and_drop_last_drops():
    idx = torch.arange(10)
    assert torch.equal(torch.cat(list(EpochBatchSampler(idx, 4, False, 0))), idx)
    assert len(list(EpochBatchSampler(idx, 4, True, 0, drop_last=True))) == 2


def _slow_translate_matches(src, out, pad):
    """Is `out` `src` shifted by some (dy, dx) with |d| <= pad, zero-filled?"""
    padded = torch.nn.functional.pad(src, (pad, pad, pad, pad))
    h, w = src.shape[-2:]
    return any(torch.equal(padded[:, dy:dy + h, dx:dx + w], out)
               for dy in range(2 * pad + 1) for dx in range(2 * pad + 1))


def test_translate_is_a_zero_filled_shift_of_each_image():
    torch.manual_seed(0)
    x = torch.rand(16, 3, 8, 9) + 1  # strictly positive so zero fill is visible
    out = random_translate(x, 2)
    assert out.shape == x.shape
    assert all(_slow_translate_matches(x[i], out[i], 2) for i in range(16))
    assert not torch.equal(out, x)
    assert torch.equal(random_translate(x, 0), x)


def test_translate_applies_the_generators_draws_in_order():
    """Image i moves by the i-th (dy, dx) the generator draws: the gather that replaced
    four-tensor indexing draws exactly what it drew, so runs before and after it agree."""
    x = torch.rand(16, 3, 8, 9) + 1
    out = random_translate(x, 2, torch.Generator().manual_seed(5))
    dy, dx = torch.randint(0, 5, (2, 16), generator=torch.Generator().manual_seed(5))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(16):
        assert torch.equal(out[i], padded[i, :, dy[i]:dy[i] + 8, dx[i]:dx[i] + 9])


def test_flip_mirrors_about_half():
    torch.manual_seed(0)
    x = torch.rand(400, 1, 4, 4)
    out = random_hflip(x)
    same = (out == x).flatten(1).all(1)
    mirrored = (out == x.flip(-1)).flatten(1).all(1)
    assert bool((same | mirrored).all())
    assert 150 < int(mirrored.sum()) < 250


def test_shift_never_mirrors_digits():
    torch.manual_seed(1)
    x = torch.rand(32, 1, 6, 6) + 1
    out = augment_batch(x, "shift", 1)
    assert all(_slow_translate_matches(x[i], out[i], 1) for i in range(32))


def test_processes_of_a_data_parallel_run_split_each_global_batch_between_them():
    idx = torch.arange(100, 203)  # 103 images: batches of 32, 32, 32 and 7
    one = list(EpochBatchSampler(idx, 32, True, seed=3))
    ranks = [EpochBatchSampler(idx, 32, True, seed=3, rank=r, world=3) for r in range(3)]
    shards = [list(s) for s in ranks]
    assert [len(s) for s in ranks] == [len(x) for x in shards] == [4, 4, 4]  # every step taken
    for step, batch in enumerate(one):  # together, exactly the single process's batch
        parts = [shards[r][step] for r in range(3)]
        assert torch.equal(torch.sort(torch.cat(parts)).values, torch.sort(batch).values)
        assert [len(p) for p in parts] == [len(batch[r::3]) for r in range(3)]
    # training: a last batch with fewer images than processes is dropped by all of them
    assert [len(EpochBatchSampler(torch.arange(65), 32, True, 0, rank=r, world=2))
            for r in range(2)] == [2, 2]
    assert [len(EpochBatchSampler(torch.arange(66), 32, True, 0, rank=r, world=4))
            for r in range(4)] == [2, 2, 2, 2]


def test_evaluation_shards_cover_every_image_once():
    idx = torch.arange(10)  # batches of 4, 4, 2: rank 2 has nothing in the last
    shards = [list(EpochBatchSampler(idx, 4, False, 0, rank=r, world=3)) for r in range(3)]
    assert [len(s) for s in shards] == [3, 3, 2]
    assert all(len(b) > 0 for s in shards for b in s)
    assert sorted(torch.cat([b for s in shards for b in s]).tolist()) == idx.tolist()
    assert [len(EpochBatchSampler(idx, 4, False, 0, rank=r, world=3)) for r in range(3)] == \
        [3, 3, 2]


def test_a_rank_outside_the_processes_is_refused():
    import pytest

    with pytest.raises(ValueError, match="rank 2"):
        EpochBatchSampler(torch.arange(4), 2, True, 0, rank=2, world=2)


def test_every_seed_and_epoch_has_its_own_order():
    """Seed 0 reshuffles too, and no two (seed, epoch) pairs of a small grid share an order."""
    idx = torch.arange(64)
    orders = {}
    for seed in range(4):
        sampler = EpochBatchSampler(idx, 16, True, seed=seed)
        for epoch in range(4):
            orders[(seed, epoch)] = tuple(_epoch(sampler, epoch).tolist())
    assert len(set(orders.values())) == len(orders)
    # a fresh sampler (no set_epoch yet: calibration batches) draws epoch 0's order
    fresh = torch.cat(list(EpochBatchSampler(idx, 16, True, seed=2)))
    assert tuple(fresh.tolist()) == orders[(2, 0)]


def test_a_last_batch_of_one_image_is_kept_and_shares_of_a_full_last_batch_too():
    batches = list(EpochBatchSampler(torch.arange(10), 3, True, 0))
    assert [len(b) for b in batches] == [3, 3, 3, 1]  # one process: nothing dropped
    # 66 images, global batch 32, 2 processes: the last batch (2 images) gives each one image
    shards = [list(EpochBatchSampler(torch.arange(66), 32, True, 0, rank=r, world=2))
              for r in range(2)]
    assert [[len(b) for b in s] for s in shards] == [[16, 16, 1], [16, 16, 1]]
    one = list(EpochBatchSampler(torch.arange(66), 32, True, 0))
    for step, batch in enumerate(one):  # two processes: halves, not the whole batch each
        assert torch.equal(shards[0][step], batch[0::2]) and torch.equal(shards[1][step],
                                                                         batch[1::2])


def test_ranks_outside_the_processes_are_refused_on_both_sides():
    import pytest

    for rank, world in ((2, 2), (3, 2), (-1, 2), (1, 1)):
        with pytest.raises(ValueError, match=f"rank {rank}"):
            EpochBatchSampler(torch.arange(4), 2, True, 0, rank=rank, world=world)


def test_evaluation_shares_skip_only_the_batch_with_nothing_for_them():
    # 7 images in batches of 2: 2, 2, 2, 1; with 3 processes only rank 0 has a 4th batch
    assert [len(EpochBatchSampler(torch.arange(7), 2, False, 0, rank=r, world=3))
            for r in range(3)] == [4, 3, 3]
    # 10 images in batches of 4: 4, 4, 2; with 4 processes ranks 2 and 3 skip the last
    lens = [len(list(EpochBatchSampler(torch.arange(10), 4, False, 0, rank=r, world=4)))
            for r in range(4)]
    assert lens == [3, 3, 2, 2] == [len(EpochBatchSampler(torch.arange(10), 4, False, 0,
                                                             rank=r, world=4)) for r in range(4)]
