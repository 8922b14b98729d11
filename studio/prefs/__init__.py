"""Human preferences: rankings of candidate answers, arena votes, and what they become.

`ranking` validates a ranking (tie groups of candidate indices, best first), turns rankings into
preference pairs or KTO rows and reads rankings collected elsewhere (JSONL); `agreement` measures
how much annotators agree (Kendall's W, Krippendorff's alpha, each annotator against the others);
`consensus` merges several annotators' rankings into one (Borda); `arena` rates models from blind A/B
votes (Bradley-Terry with bootstrap intervals). Those are pure Python on plain lists and dicts.
`store` keeps task sets, items, annotators and submissions in their own SQLite file; `service` is what
the Preferences tab and `studio prefs` call: candidate generation and the AI judge as background jobs
(`sources`, `judge`; `slots` gives each candidate slot its own model and settings), export to studio
datasets (`export`), agreement reports and the arena.
"""
