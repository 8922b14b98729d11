"""Export: from a finished run (or any base model) to files people run elsewhere.

`source` resolves what is exported and loads it (adapters folded into the base weights when the method allows),
`staging` writes every artifact into a temporary folder that replaces the previous export only once complete,
`merge` writes merged models and adapter folders with a model card, `bnb` and `ptq` quantise, `gguf` and
`modelfile` write llama.cpp / Ollama files, `report` measures what quantisation cost, `pipeline` ties one export
together, `service` runs exports as background jobs and `hub` pushes or zips the result.
"""
