"""A question in another language than the documents: also search its translation.

MiniLM, the embedded embedder, is an English model, and BM25 matches words: a Spanish question over English manuals
finds little either way. When the question's language differs from the collection's, the studio translates it and
searches both; the two rankings are fused like dense and BM25 are. The translation comes from Apertium (rule-based,
offline, `apt install apertium apertium-en-es`) when its language pair is installed, or, when asked for ('model'),
from the answering model: a model of a billion parameters or more translates a question well; the embedded 135M one
does not, so 'auto' never asks it."""
from __future__ import annotations

import functools
import re
import shutil
import subprocess
from typing import Callable

TRANSLATE = ("auto", "apertium", "model", "off")
# langdetect's codes -> Apertium's three-letter codes (the pairs Debian packages: apertium-en-es, -en-ca, -es-pt ...)
APERTIUM_CODES = {"en": "eng", "es": "spa", "ca": "cat", "pt": "por", "fr": "fra", "it": "ita", "gl": "glg"}
TIMEOUT_S = 20
# langdetect's codes -> the English names that prompts use ("Answer in Spanish.", "Translate ... into Spanish")
LANGUAGES = {"es": "Spanish", "en": "English", "fr": "French", "de": "German", "pt": "Portuguese", "it": "Italian",
             "ca": "Catalan", "nl": "Dutch"}
_SPANISH_MARKS = re.compile(r"[¿¡ñ]", re.IGNORECASE)


def question_language(text: str, sure: float = 0.0) -> str | None:
    """The language code of a question (langdetect), None when langdetect is less sure of it than `sure`; '¿', '¡'
    and 'ñ' settle Spanish, which short questions need."""
    if _SPANISH_MARKS.search(text):
        return "es"
    from langdetect import DetectorFactory, LangDetectException, detect_langs

    DetectorFactory.seed = 0
    try:
        best = detect_langs(text)[0]
    except LangDetectException:
        return None
    return best.lang if best.prob >= sure else None


def apertium_mode(source: str, target: str) -> str | None:
    """Apertium's mode for source -> target when Apertium and that pair are installed, else None."""
    src, dst = APERTIUM_CODES.get(source), APERTIUM_CODES.get(target)
    mode = f"{src}-{dst}"
    return mode if src and dst and mode in _apertium_modes() else None


@functools.lru_cache(maxsize=1)
def _apertium_modes() -> tuple[str, ...]:
    """The installed Apertium modes, listed once per process (not once per question)."""
    if not shutil.which("apertium"):
        return ()
    try:
        return tuple(subprocess.run(["apertium", "-l"], capture_output=True, text=True,
                                    timeout=TIMEOUT_S).stdout.split())
    except (OSError, subprocess.TimeoutExpired):
        return ()


def apertium(text: str, mode: str) -> str | None:
    """`text` translated by Apertium's `mode` (unknown words kept as they are, unmarked)."""
    try:
        done = subprocess.run(["apertium", "-u", mode], input=text, capture_output=True, text=True,
                              timeout=TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = " ".join(done.stdout.split())
    return out if done.returncode == 0 and out else None


def model_prompt(text: str, target: str) -> list[dict]:
    name = LANGUAGES.get(target, target)
    return [{"role": "system", "content": f"Translate the user's question into {name}. Reply with the translation "
                                          "only, nothing else."},
            {"role": "user", "content": text}]


def translate_question(question: str, documents_language: str | None, how: str = "auto",
                       model_translate: Callable[[list[dict]], str] | None = None) -> tuple[str | None, str]:
    """(the question in the documents' language, how it was translated) or (None, why not).

    `how`: 'auto' (Apertium when it has the pair), 'apertium', 'model' (`model_translate(messages)` writes it, the
    answering model), 'off'."""
    if how == "off" or not documents_language:
        return None, "off" if how == "off" else "documents' language unknown"
    source = question_language(question)
    if source is None or source == documents_language:
        return None, "same language"
    if how in ("auto", "apertium"):
        mode = apertium_mode(source, documents_language)
        if mode:
            out = apertium(question, mode)
            return (out, f"apertium {mode}") if out else (None, f"apertium {mode} failed")
        if how == "apertium":
            return None, f"Apertium has no {source}-{documents_language} pair here"
        return None, f"no translator for {source}-{documents_language} (install apertium)"
    if how == "model" and model_translate is not None:
        out = " ".join(model_translate(model_prompt(question, documents_language)).split())
        return (out, "model") if out else (None, "the model wrote nothing")
    return None, "no model to translate with"


def cross_language(store, collection: str, question: str, how: str = "auto",
                   model_translate: Callable[[list[dict]], str] | None = None) -> dict:
    """What to search besides `question` in `collection`: {"also": [its translation into the language most of the
    chunks are in] or [], "by": how it was translated or why not}."""
    translation, by = translate_question(question, store.word_index(collection).language, how, model_translate)
    return {"also": [translation] if translation else [], "by": by}
