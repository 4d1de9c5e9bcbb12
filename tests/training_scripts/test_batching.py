"""Batching layouts: the choice, the same examples per step, and the same loss as unbatched."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest
import torch

from training_scripts import batching
from training_scripts.arguments import DataArguments, RunArguments, UsageError, parse_args
from training_scripts.attention import SDPA_VARLEN, set_attention
from training_scripts.batching import (
    PACKED,
    PADDED,
    PADDING_FREE,
    AttentionSupport,
    BatchingPlan,
    PackedBatchCollator,
    PaddingFreeCollator,
    attention_pair_weight,
    attention_support,
    choose_batching,
)
from training_scripts.packing import PaddedCollator
from training_scripts.tokenization import IGNORE_INDEX, TokenizedExample
from training_scripts.trainer import selected_token_loss

SMOLLM2_SHAPE = {
    "hidden_size": 576,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "intermediate_size": 1536,
}
SDPA = AttentionSupport(SDPA_VARLEN, varlen=True, position_boundaries=True)
EAGER = AttentionSupport("eager", varlen=False, position_boundaries=True)
LEAKY = AttentionSupport("custom", varlen=False, position_boundaries=False)


def smollm2_weight() -> float:
    from types import SimpleNamespace

    return attention_pair_weight(SimpleNamespace(**SMOLLM2_SHAPE))


def choose(requested: str, lengths: list[int], support: AttentionSupport, batch: int = 8):
    return choose_batching(
        requested,
        lengths=lengths,
        batch_size=batch,
        max_seq_length=512,
        support=support,
        pair_weight=smollm2_weight(),
    )


def short_uniform(n: int = 480) -> list[int]:
    rng = random.Random(0)
    return [rng.randint(140, 160) for _ in range(n)]


def long_variable(n: int = 480) -> list[int]:
    rng = random.Random(0)
    return [round(10 ** rng.uniform(1.3, 2.7)) for _ in range(n)]  # 20 to 500 tokens


def test_defaults_and_thresholds_are_pinned() -> None:
    assert DataArguments().batching == "auto"
    assert DataArguments().packing is None
    assert RunArguments().per_device_train_batch_size == 4
    assert batching.BATCHING_CHOICES == ("auto", "padding_free", "packed", "padded")
    assert batching.LENGTH_GROUPING_MIN_PADDING == 0.10
    assert batching.LENGTH_GROUP_MEGABATCH == 50
    assert batching.BLOCK_MASK_MIN_SAVING == 0.15
    assert batching.SIMULATED_BATCHES == 200
    assert smollm2_weight() == pytest.approx(3.26e-4, rel=0.01)


def test_a_variable_length_kernel_always_gets_padding_free_batches() -> None:
    for lengths in (short_uniform(), long_variable()):
        plan = choose("auto", lengths, SDPA)
        assert (plan.mode, plan.varlen, plan.length_grouped) == (PADDING_FREE, True, False)
        assert plan.relative_cost[PADDING_FREE] <= 1.0
        assert "sdpa_varlen attends within each example" in plan.reason
    flash = AttentionSupport("flash_attention_2", varlen=True, position_boundaries=True)
    assert choose("auto", long_variable(), flash).mode == PADDING_FREE


def test_without_one_short_uniform_records_are_padded_and_variable_ones_grouped() -> None:
    # The case: records of ~150 tokens; a block-diagonal mask over 8 of them costs more
    # than the little padding a random batch has.
    plan = choose("auto", short_uniform(), EAGER)
    assert (plan.mode, plan.length_grouped) == (PADDED, False)
    assert plan.relative_cost[PACKED] > 1.0 and plan.relative_cost[PADDING_FREE] > 1.0
    assert "random batches pad only" in plan.reason
    # Lengths over an order of magnitude: random batches pad a lot, grouping fixes most of it.
    plan = choose("auto", long_variable(), EAGER)
    assert (plan.mode, plan.length_grouped) == (PADDED, True)
    assert "grouped by length" in plan.reason
    # Block-diagonal rows win when their attention is cheap against the padding they save:
    # many tiny examples in one long batch of very different lengths, no grouping help.
    rng = random.Random(1)
    spiky = [rng.choice([8, 8, 8, 8, 8, 8, 8, 300]) for _ in range(400)]
    plan = choose("auto", spiky, EAGER, batch=64)
    assert plan.mode in (PACKED, PADDING_FREE) and not plan.varlen


def test_requests_are_honoured_unless_the_model_would_let_examples_mix() -> None:
    for mode in (PADDED, PACKED, PADDING_FREE):
        assert choose(mode, short_uniform(), SDPA).mode == mode
    assert choose(PACKED, short_uniform(), SDPA).varlen is False  # several rows: mask path
    for mode in (PACKED, PADDING_FREE):
        plan = choose(mode, short_uniform(), LEAKY)
        assert plan.mode == PADDED
        assert "lets examples in one row attend to each other" in plan.reason
    assert choose("auto", short_uniform(), LEAKY).mode == PADDED


def test_packing_flag_maps_to_batching_and_conflicts_are_refused(tmp_path: Path) -> None:
    base = ["--model_name_or_path", "m", "--train_file", "t", "--output_dir", str(tmp_path)]
    assert parse_args(base).data.batching == "auto"
    assert parse_args([*base, "--packing", "true"]).data.batching == PACKED
    assert parse_args([*base, "--packing", "False"]).data.batching == PADDED
    assert parse_args([*base, "--batching", "padded", "--packing", "false"]).data.batching == PADDED
    with pytest.raises(UsageError, match="--packing True means --batching packed"):
        parse_args([*base, "--batching", "padded", "--packing", "true"])
    with pytest.raises(UsageError, match="invalid choice"):
        parse_args([*base, "--batching", "sometimes"])


# -- the same examples, the same loss -----------------------------------------------------------


def make_examples(n: int, seed: int = 0) -> list[TokenizedExample]:
    rng = random.Random(seed)
    examples = []
    for _ in range(n):
        length = rng.randint(4, 40)
        ids = [rng.randint(3, 200) for _ in range(length)]
        prompt = rng.randint(1, length - 1)
        labels = [IGNORE_INDEX] * prompt + ids[prompt:]
        examples.append(TokenizedExample(ids, labels))
    return examples


def split_back(batch: dict) -> list[list[int]]:
    """The examples (their token ids) a collated micro-batch holds, whatever the layout."""
    found = []
    ids = batch["input_ids"]
    if "attention_mask" in batch:
        for row, mask in zip(ids, batch["attention_mask"], strict=True):
            found.append(row[mask.bool()].tolist())
        return found
    for r in range(ids.shape[0]):
        positions = batch["position_ids"][r].tolist()
        starts = [i for i, p in enumerate(positions) if p == 0] + [len(positions)]
        labels = batch["labels"][r].tolist()
        for a, b in itertools.pairwise(starts):
            if any(label != IGNORE_INDEX for label in labels[a:b]):  # row-tail padding has none
                found.append(ids[r, a:b].tolist())
    return found


COLLATORS = {
    PADDED: PaddedCollator(0),
    PADDING_FREE: PaddingFreeCollator(varlen=True),
    PACKED: PackedBatchCollator(0, capacity=64),
}


def test_every_layout_gives_the_trainer_the_same_examples_per_step(tiny_model: Path) -> None:
    from transformers import AutoModelForCausalLM, TrainingArguments

    from training_scripts.packing import ListDataset
    from training_scripts.trainer import FinetuneTrainer

    examples = make_examples(37)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    seen = {}
    for mode, collator in COLLATORS.items():
        args = TrainingArguments(
            output_dir="unused", per_device_train_batch_size=5, seed=3, report_to="none",
            use_cpu=True, dataloader_num_workers=0,
        )  # fmt: skip
        trainer = FinetuneTrainer(
            model=model, args=args, train_dataset=ListDataset(examples), data_collator=collator
        )
        batches = list(trainer.get_train_dataloader())
        seen[mode] = [sorted(map(tuple, split_back(b))) for b in batches]
        assert [b["num_tokens"] for b in batches] == [
            sum(len(e) for e in split_back(b)) for b in batches
        ]
    assert [len(b) for b in seen[PADDED]] == [5] * 7 + [2]
    assert seen[PADDING_FREE] == seen[PADDED]
    assert seen[PACKED] == seen[PADDED]


def unbatched_loss(model, examples: list[TokenizedExample]) -> torch.Tensor:
    """Mean cross-entropy over every trained token, each example run on its own."""
    total, count = torch.zeros(()), 0
    for example in examples:
        ids = torch.tensor([example.input_ids])
        logits = model(input_ids=ids).logits[0, :-1]
        labels = torch.tensor(example.labels[1:])
        total = total + torch.nn.functional.cross_entropy(
            logits, labels, ignore_index=IGNORE_INDEX, reduction="sum"
        )
        count += int((labels != IGNORE_INDEX).sum())
    return total / count


@pytest.mark.parametrize(
    ("mode", "kernel"),
    [
        (PADDED, "sdpa"),
        (PADDED, SDPA_VARLEN),
        (PADDING_FREE, SDPA_VARLEN),
        (PADDING_FREE, "sdpa"),
        (PADDING_FREE, "eager"),
        (PACKED, "sdpa"),
    ],
)
def test_each_layout_gives_the_loss_and_gradients_of_unbatched_examples(
    tiny_model: Path, mode: str, kernel: str
) -> None:
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, attn_implementation="sdpa").eval()
    model.config.use_cache = False
    examples = make_examples(6, seed=1)
    expected = unbatched_loss(model, examples)
    expected.backward()
    expected_grad = model.model.layers[0].self_attn.q_proj.weight.grad.clone()
    model.zero_grad()

    set_attention(model, kernel)
    collator = COLLATORS[mode]
    if mode == PADDING_FREE:
        collator = PaddingFreeCollator(varlen=kernel == SDPA_VARLEN)
    batch = collator(examples)
    batch.pop("num_tokens")
    for select_logits in (True, False):
        loss_sum, count, _ = selected_token_loss(model, batch, select_logits)
        loss = loss_sum / count
        loss.backward()
        torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-5)
        grad = model.model.layers[0].self_attn.q_proj.weight.grad
        torch.testing.assert_close(grad, expected_grad, rtol=1e-4, atol=1e-6)
        model.zero_grad()


def test_the_probe_finds_the_variable_length_path_and_leaves_the_kernel_alone(
    tiny_model: Path,
) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model, attn_implementation="sdpa")
    support = attention_support(model, model.config.vocab_size, "sdpa")
    assert support == AttentionSupport(SDPA_VARLEN, varlen=True, position_boundaries=True)
    assert model.config._attn_implementation == "sdpa"
    model.set_attn_implementation("eager")
    assert attention_support(model, model.config.vocab_size, "eager") == EAGER


def test_plan_line_names_the_mode_the_batch_size_and_why() -> None:
    plan = BatchingPlan(PADDED, True, False, "eager", "because", {PADDED: 1.0, PACKED: 1.25})
    assert plan.describe(8) == (
        "batching: padded length-grouped, 8 examples per micro-batch in every mode; because "
        "(estimated compute, padded=1: packed=1.25 padded=1.00)"
    )
