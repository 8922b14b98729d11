"""Whether retrieved passages can answer a question, so the chat says "the documents do not contain it"
instead of letting a model invent an answer.

Calibrated with bench/rag_calibrate.py on the sample corpus (assets/rag: 40 answerable questions, 20 that
no document answers) with the embedded all-MiniLM-L6-v2, hybrid search, k = 4: this rule answers 97.5% of
the answerable questions and refuses 65% of the others (balanced accuracy 81%, the same leave-one-out);
best similarity alone (>= 0.3) refuses only 30%. On 30 questions written afterwards: 90% and 50%. What
it still answers: near-topic questions whose passages are very similar (every Spanish one: MiniLM is an
English model), so the sources shown under each answer stay the user's check.
"""
from __future__ import annotations

from studio.rag.retrieval import Hit, words

SURE_SIMILARITY = 0.50  # at or above: the best passage is on the question's topic, whatever its words
MIN_SIMILARITY = 0.28   # below: nothing retrieved is related
MIN_COVERAGE = 0.60     # in between: answer only when the passages hold this share of the question's words
PREFIX = 4              # words of 4+ letters also match on their first 4 (sick: sickness, pierdo: pierdes)
# English and Spanish function words, then words that say what kind of answer is wanted, not what about.
STOPWORDS = frozenset("""
    the and for are but not you your yours with this that these those there their them they from into onto
    what which who whom whose when where why how does did doing done have has had having was were been being
    can could should would will shall may might must any all some each every much many more most other such
    than then too very just also only own same about above after again against before below between during
    out off over under until while its it's our ours she her his him himself herself itself myself yourself
    get got let make one two per via yes
    los las les una uno unos unas del por para con sin sobre entre hasta desde hacia que qué quién quien
    quiénes cuál cual cuáles cuando cuándo donde dónde como cómo cuánto cuanto cuánta cuanta cuántos cuantos
    cuántas cuantas porque pero más menos muy ese esa esos esas este esta estos estas esto eso aquel ella
    ellos ellas nos sus mis tus son ser está están estar hay han has hemos había tiene tienen tengo puedo
    puede pueden puedes debo debe deben fue era sido algo alguien nada todo toda todos todas otro otra otros
    otras mismo misma también tan
    mean means meaning happen happens happened need needs want wants know tell find use used using try come
    comes goes going put take takes give gives keep look looks say says said allowed allow possible able long
    often now still already way thing things kind sort ask exactly
    significa pasa necesito necesitas necesita quiero quieres saber hacer hacerse hace tiempo cosa forma manera
    pedir dar tener usar sirve vale
""".split())


def content_words(text: str) -> list[str]:
    """The words of `text` that carry its meaning: lower-cased, 3+ characters, not a stopword, each once."""
    return list(dict.fromkeys(w for w in words(text) if len(w) >= 3 and w not in STOPWORDS))


def word_coverage(question: str, texts: list[str], index) -> float:
    """The share of `question`'s content words that `texts` contain, each weighted by its BM25 idf in the
    collection's word index (1.0 for a question without content words). A word matches the same word or, from 4
    letters on, any word sharing its first 4 letters; a word the collection never uses weighs the most (the idf
    of a word in no chunk): it is the likeliest to name what the documents do not cover."""
    terms = content_words(question)
    if not terms:
        return 1.0
    present = {w for text in texts for w in words(text)}
    stems = {w[:PREFIX] for w in present}
    weights = {w: index.idf(w) for w in terms}
    found = sum(weights[w] for w in terms if w in present or (len(w) >= PREFIX and w[:PREFIX] in stems))
    return found / sum(weights.values())


def answerable(question: str, hits: list[Hit], index, floor: float = MIN_SIMILARITY) -> bool:
    """Whether the retrieved `hits` can answer `question`: very similar, or similar and holding its words.

    Dense similarity alone cannot decide: MiniLM rates a Spanish question 0.6-0.7 against Spanish text on
    any subject, and a near-topic one ("the dress code at Orchard") 0.5-0.6 against the handbook. Whether the
    passages hold the question's rarer words tells many of those apart; a very similar passage still answers
    alone, so a question worded differently from the documents is not refused. `floor` is the user's
    minimum similarity (`AskSettings.min_similarity`)."""
    best = max((h.similarity for h in hits if h.similarity is not None), default=None)
    if best is None or best < floor:
        return False
    return best >= max(SURE_SIMILARITY, floor) or word_coverage(question, [h.text for h in hits], index) >= MIN_COVERAGE
