"""`--tokenizer PATH`: prompts of exactly `--input-len` tokens as the target's own tokenizer counts them,
no calibration, dataset prompts counted, one-line errors. Real tokenizers trained with `tokenizers`
(byte-level BPE with a BOS, WordPiece with [CLS]/[SEP], a SentencePiece-style unigram), and a real run
against the bundled server serving a checkpoint with that tokenizer."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from satscope.errors import SatscopeError
from satscope.loadgen.tokenizer import WordCosts, load_prompt_tokenizer
from satscope.loadgen.workload import VOCABULARY, LengthDist, Workload, WorkloadConfig
from tests.cli.test_light_install import _light_env
from tests.helpers import bundled_server
from tests.loadgen.conftest import run_satscope

tokenizers = pytest.importorskip("tokenizers")

_TEXT = ["the quick brown fox jumps over the lazy dog and it is for you, said she to the day"] * 20


def _bpe(path: Path, vocab_size: int = 320) -> Path:
    """Byte-level BPE with merges and a BOS, as Llama 3's."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    tok.train_from_iterator(_TEXT, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<s>", "</s>"],
                                                       initial_alphabet=alphabet))  # fmt: skip
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    tok.save(str(path))
    return path


def _bytes(path: Path) -> Path:
    """Byte-level BPE without merges (the bundled server's checkpoints): every word costs 2 to 6 tokens."""
    return _bpe(path, vocab_size=258)


def _wordpiece(path: Path) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(
        _TEXT, trainers.WordPieceTrainer(vocab_size=200, special_tokens=["[UNK]", "[CLS]", "[SEP]"])
    )
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 1), ("[SEP]", 2)]
    )
    tok.save(str(path))
    return path


def _unigram(path: Path) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(_TEXT, trainers.UnigramTrainer(vocab_size=80, special_tokens=["<unk>"], unk_token="<unk>"))
    tok.save(str(path))
    return path


@pytest.mark.parametrize(("make", "special"), [(_bpe, 1), (_bytes, 1), (_wordpiece, 2), (_unigram, 0)])
def test_prompts_are_exactly_the_length_the_tokenizer_counts(tmp_path: Path, make, special: int) -> None:
    tokenizer = load_prompt_tokenizer(make(tmp_path / "tokenizer.json"))
    assert tokenizer.special_tokens == special
    costs = WordCosts(tokenizer, VOCABULARY)
    assert costs.exact
    rng = random.Random(5)
    smallest = min(costs.first.values())  # below the cheapest word no prompt is exact
    for n in [*range(smallest, 60), 257, 1000]:
        words = costs.prompt_words(rng, n)
        assert tokenizer.count(" ".join(words)) == n, (n, words)


@pytest.mark.parametrize("make", [_bpe, _bytes])
def test_workload_prompts_hold_input_len_with_prefixes_and_count_dataset_prompts(tmp_path: Path, make) -> None:
    path = make(tmp_path / "tokenizer.json")
    tokenizer = load_prompt_tokenizer(tmp_path)  # the folder that holds it
    cfg = WorkloadConfig(input_len=LengthDist("uniform", 90, 60), tokenizer=str(path), prompt_overhead_tokens=1,
                         prefix_groups=2, prefix_tokens=12, seed=9)  # fmt: skip
    workload = Workload(cfg)
    specs = [workload.next_request() for _ in range(300)]
    assert len({s.input_tokens for s in specs}) > 50
    for spec in specs:
        assert tokenizer.count(spec.prompt) + 1 == spec.input_tokens, spec
    # every prompt starts with one of the two prefixes of exactly 12 tokens
    heads = set()
    for spec in specs:
        words = spec.prompt.split()
        k = next(k for k in range(1, len(words) + 1) if tokenizer.count(" ".join(words[:k])) >= 12)
        assert tokenizer.count(" ".join(words[:k])) == 12
        heads.add(tuple(words[:k]))
    assert len(heads) == 2
    dataset = tmp_path / "sharegpt.json"
    prompts = ["the lazy dog said hello", "a fox, quick and brown, jumps over everything"]
    dataset.write_text(json.dumps([{"conversations": [{"from": "human", "value": p}]} for p in prompts]))
    counted = Workload(WorkloadConfig(dataset=str(dataset), tokenizer=str(path), prompt_overhead_tokens=1))
    got = {s.prompt: s.input_tokens for s in (counted.next_request() for _ in range(2))}
    assert got == {p: tokenizer.count(p) + 1 for p in prompts}
    assert len(set(got.values())) == 2


def test_bad_tokenizers_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(SatscopeError, match="not found"):
        load_prompt_tokenizer(tmp_path)  # a folder without tokenizer.json
    (tmp_path / "tokenizer.json").write_text('{"version": "1.0"}')
    with pytest.raises(SatscopeError, match=r"is not a Hugging Face tokenizer\.json") as err:
        load_prompt_tokenizer(tmp_path)
    assert "\n" not in str(err.value)
    res = run_satscope("--target", "http://127.0.0.1:9", "--users", "1", "--tokenizer", str(tmp_path),
                       "--out", str(tmp_path / "run"))  # fmt: skip
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert res.stderr.startswith("error: --tokenizer") and "not a Hugging Face tokenizer.json" in res.stderr
    assert not (tmp_path / "run").exists()


def test_the_light_install_names_the_package_to_add(tmp_path: Path) -> None:
    _bpe(tmp_path / "tokenizer.json")
    res = run_satscope("--target", "http://127.0.0.1:9", "--users", "1", "--tokenizer", str(tmp_path),
                       "--out", str(tmp_path / "run"), env=_light_env(tmp_path))  # fmt: skip
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs the tokenizers package" in lines[0] and "pip install tokenizers" in lines[0]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The engine's tiny random model as a Hugging Face checkpoint whose byte-level tokenizer adds a BOS."""
    pytest.importorskip("torch")
    from satscope.server_under_test.config import ServerConfig
    from satscope.server_under_test.engine import LLMEngine
    from tests.server.test_engine import _write_checkpoint

    path = tmp_path_factory.mktemp("ckpt")
    _write_checkpoint(path, LLMEngine(ServerConfig(max_model_len=256)))
    raw = json.loads((path / "tokenizer.json").read_text())
    bos = next(t["id"] for t in raw["added_tokens"] if t["content"] == "<s>")
    raw["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [bos], "tokens": ["<s>"]}},
    }
    (path / "tokenizer.json").write_text(json.dumps(raw))
    return path


@pytest.mark.slow
def test_the_server_counts_exactly_input_len_with_its_own_tokenizer(checkpoint: Path, tmp_path: Path) -> None:
    assert load_prompt_tokenizer(checkpoint).special_tokens == 1
    out, replay = tmp_path / "run", tmp_path / "replay"
    trace = tmp_path / "trace.jsonl"  # a trace of shared 16-token blocks, every prompt a different length
    lengths = [20 + 13 * i for i in range(8)]
    trace.write_text("".join(json.dumps({"timestamp": 50 * i, "input_length": n, "output_length": 2,
                                         "hash_ids": [0, *range(10 * i + 1, 10 * i + n // 16 + 1)]}) + "\n"
                             for i, n in enumerate(lengths)))  # fmt: skip
    with bundled_server("--model", str(checkpoint), "--max-model-len", "256") as server:
        res = run_satscope(
            "--target", server.url, "--tokenizer", str(checkpoint), "--users", "2", "--duration", "2",
            "--input-len", "uniform:40:30", "--output-len", "4", "--prefix-groups", "2", "--prefix-tokens", "9",
            "--out", str(out), timeout=120,
        )  # fmt: skip
        replayed = run_satscope(
            "--target", server.url, "--tokenizer", str(checkpoint), "--dataset", str(trace), "--dataset-format",
            "mooncake", "--trace-block-tokens", "16", "--out", str(replay), timeout=120,
        )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert replayed.returncode == 0, replayed.stderr
    trace_req = pq.read_table(replay / "requests.parquet").to_pandas().sort_values("intended_start")
    assert (trace_req.status == "ok").all() and list(trace_req.prompt_tokens) == lengths
    req = pq.read_table(out / "requests.parquet").to_pandas()
    assert (req.status == "ok").all() and len(req) >= 10, req.error.unique()
    assert req.input_tokens_requested.nunique() > 5  # many lengths, each exact
    assert (req.prompt_tokens == req.input_tokens_requested).all(), req[["prompt_tokens", "input_tokens_requested"]]
    manifest = json.loads((out / "run.json").read_text())
    workload = manifest["config"]["workload"]
    assert manifest["loadgen"]["calibration_requests"] == 0 and "calibration" not in workload
    assert workload["tokenizer"] == str((checkpoint / "tokenizer.json").resolve())
    assert workload["prompt_overhead_tokens"] == 1
