"""Human preferences: rankings of candidate answers, arena votes, and what they become.

`ranking` validates a ranking (tie groups of candidate indices, best first), turns rankings into
preference pairs or KTO rows and reads rankings collected elsewhere (JSONL); `agreement` measures
how much annotators agree (Kendall's W, Krippendorff's alpha, each annotator against the others);
`consensus` merges several annotators' rankings into one (Borda); `arena` rates models from blind A/B
votes (Bradley-Terry with bootstrap intervals). All of it is pure Python on plain lists and dicts:
storing task sets and submissions, the annotator screen and the training stages live elsewhere.
"""
