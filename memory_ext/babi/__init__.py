"""The bAbI application (`memory-ext babi`): data.py (parsing, vocabulary, vectors), the models
memn2n.py (End-To-End Memory Networks) with memn2n_train.py, memnn.py (Memory Networks, hard
read, with its training) and mnm.py (Metalearned Neural Memory reader, with its training), and
cli.py (the command)."""
from .data import (Batchable, Example, TASK_NAMES, Vocab, load_task, parse, prepare_task,  # noqa: F401
                   split_validation, task_files, tokenize, vectorize)
