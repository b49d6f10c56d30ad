"""Tokenizers: byte-level for random-weight presets, Hugging Face `tokenizer.json` for `--model PATH`.

Both turn text into ids, ids back into text incrementally (a streamed chunk never ends inside a
multi-byte character), and chat messages into a prompt.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from satscope.server_under_test.config import ConfigError, ModelConfig

__all__ = ["ByteTokenizer", "ChatTemplateError", "HFTokenizer", "IncrementalDecoder", "Tokenizer", "load_tokenizer"]


class ChatTemplateError(ValueError):
    """The chat template refused these messages (raise_exception) or failed on them: a 400."""


class IncrementalDecoder(Protocol):
    def decode(self, token_id: int) -> str: ...
    def flush(self) -> str: ...  # what was held back, once the output has ended


class Tokenizer(Protocol):
    bos_token_id: int
    eos_token_id: int

    def encode(self, text: str) -> list[int]: ...
    def decode(self, ids: Sequence[int]) -> str: ...
    def incremental_decoder(self) -> IncrementalDecoder: ...
    def apply_chat_template(self, messages: list[dict[str, str]]) -> str: ...
    def chat_token_ids(self, messages: list[dict[str, str]]) -> list[int]: ...


def _plain_chat_prompt(messages: list[dict[str, str]]) -> str:
    lines = [f"{m['role']}: {m['content']}" for m in messages]
    return "\n".join([*lines, "assistant:"])


class _ByteDecoder:
    """Feeds bytes through a UTF-8 decoder that holds back an incomplete character."""

    def __init__(self, tokenizer: ByteTokenizer) -> None:
        self._tokenizer = tokenizer
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def decode(self, token_id: int) -> str:
        if token_id < 256:
            return self._utf8.decode(bytes([token_id]))
        return self.flush() + self._tokenizer.special_text(token_id)

    def flush(self) -> str:
        return self._utf8.decode(b"", final=True)


class ByteTokenizer:
    """Ids 0-255 are UTF-8 bytes; BOS and EOS decode to nothing; ids beyond (large random-weight
    vocabularies) decode to `<id>` so every generated token is visible text."""

    def __init__(self, model: ModelConfig) -> None:
        self.bos_token_id = model.bos_token_id
        self.eos_token_id = model.eos_token_id
        self.vocab_size = model.vocab_size

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def banned_token_ids(self) -> list[int]:
        """Ids a random-weight model may not generate: BOS, control bytes and non-ASCII bytes, so
        that every generated token is exactly one visible character (or EOS)."""
        printable = set(range(32, 127)) | {ord("\n")}
        return [i for i in range(256) if i not in printable] + [self.bos_token_id]

    def special_text(self, token_id: int) -> str:
        return "" if token_id in (self.bos_token_id, self.eos_token_id) else f"<{token_id}>"

    def decode(self, ids: Sequence[int]) -> str:
        decoder = _ByteDecoder(self)
        return "".join(decoder.decode(i) for i in ids) + decoder.flush()

    def incremental_decoder(self) -> IncrementalDecoder:
        return _ByteDecoder(self)

    def apply_chat_template(self, messages: list[dict[str, str]]) -> str:
        return _plain_chat_prompt(messages)

    def chat_token_ids(self, messages: list[dict[str, str]]) -> list[int]:
        return self.encode(self.apply_chat_template(messages))


class _HFDecoder:
    """vLLM-style incremental detokenization over a sliding window: decode the few tokens since the
    last emitted text, with the token before them as context (so a word's leading space and merges
    come out as in a full decode), and wait while the tail is an incomplete character (U+FFFD)."""

    def __init__(self, tokenizer: HFTokenizer) -> None:
        self._tokenizer = tokenizer
        self._ids: list[int] = []
        self._prefix = 0  # start of the context window
        self._read = 0  # end of what has been emitted

    def decode(self, token_id: int) -> str:
        self._ids.append(token_id)
        before = self._tokenizer.decode(self._ids[self._prefix : self._read])
        text = self._tokenizer.decode(self._ids[self._prefix :])
        if len(text) <= len(before) or text.endswith("\ufffd"):
            return ""
        self._prefix, self._read = self._read, len(self._ids)
        return text[len(before) :]

    def flush(self) -> str:
        before = self._tokenizer.decode(self._ids[self._prefix : self._read])
        text = self._tokenizer.decode(self._ids[self._prefix :])
        self._prefix = self._read = len(self._ids)
        return text[len(before) :]


def _token_text(value: object) -> str:
    """tokenizer_config.json writes a special token as a string or as {"content": ...}."""
    if isinstance(value, str):
        return value
    return str(value.get("content", "")) if isinstance(value, dict) else ""


def _read_template(path: Path, raw: dict[str, object]) -> str | None:
    """`chat_template.jinja` first (transformers' newer layout), else tokenizer_config.json's
    `chat_template`: a string, or a list of named templates of which "default" is used."""
    jinja = path / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text()
    template = raw.get("chat_template")
    if isinstance(template, list):
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    return template if isinstance(template, str) else None


def _raise_exception(message: str) -> None:
    raise ChatTemplateError(message)


def _strftime_now(fmt: str) -> str:
    import datetime

    return datetime.datetime.now().strftime(fmt)


class HFTokenizer:
    """A Hugging Face `tokenizers` tokenizer.json, with the chat template rendered as transformers
    does: HF's variables, then the text encoded without adding special tokens (the template writes
    BOS itself where the model wants it)."""

    def __init__(self, path: Path, model: ModelConfig) -> None:
        from tokenizers import Tokenizer as _Tokenizer

        from satscope.server_under_test.hf_config import read_json

        file = path / "tokenizer.json"
        try:
            self._tok = _Tokenizer.from_file(str(file))
        except Exception as exc:  # tokenizers raises a bare Exception on a malformed file
            raise ConfigError(f"{file} is not a valid tokenizer.json ({exc})") from None
        self.bos_token_id = model.bos_token_id
        self.eos_token_id = model.eos_token_id
        config_file = path / "tokenizer_config.json"
        raw = read_json(config_file) if config_file.is_file() else {}
        self._bos_text = _token_text(raw.get("bos_token"))
        self._eos_text = _token_text(raw.get("eos_token"))
        self._template = None
        source = _read_template(path, raw)
        if source is not None:
            from jinja2 import TemplateError
            from jinja2.sandbox import ImmutableSandboxedEnvironment

            env = ImmutableSandboxedEnvironment(
                trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
            )
            env.globals.update(raise_exception=_raise_exception, strftime_now=_strftime_now)
            try:
                self._template = env.from_string(source)
            except TemplateError as exc:
                raise ConfigError(f"the chat template of {path} does not compile ({exc})") from None

    def encode(self, text: str) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=True).ids)

    def decode(self, ids: Sequence[int]) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=True)

    def incremental_decoder(self) -> IncrementalDecoder:
        return _HFDecoder(self)

    def apply_chat_template(self, messages: list[dict[str, str]]) -> str:
        if self._template is None:
            return _plain_chat_prompt(messages)
        from jinja2 import TemplateError

        try:
            return self._template.render(
                messages=messages, add_generation_prompt=True, bos_token=self._bos_text, eos_token=self._eos_text
            )
        except TemplateError as exc:
            raise ChatTemplateError(f"the chat template failed on these messages: {exc}") from None

    def chat_token_ids(self, messages: list[dict[str, str]]) -> list[int]:
        text = self.apply_chat_template(messages)
        if self._template is None:
            return self.encode(text)
        return list(self._tok.encode(text, add_special_tokens=False).ids)


def load_tokenizer(model: ModelConfig, model_path: str | None) -> Tokenizer:
    if model_path is None:
        return ByteTokenizer(model)
    path = Path(model_path)
    if not (path / "tokenizer.json").is_file():
        raise ConfigError(f"{path / 'tokenizer.json'} not found: --model needs a tokenizer.json")
    return HFTokenizer(path, model)
