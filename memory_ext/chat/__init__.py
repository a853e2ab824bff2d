"""The chatbot application (`memory-ext chat`, `train-chat`, `eval-chat`): bot.py (MemoryChatbot,
its checkpoint format), dialogues.py (the dialogue generator and data loaders), train.py (training
and recall evaluation), distributed.py (data-parallel training), cli.py (the commands) and
data/chatbot.pt (the shipped checkpoint)."""
from .bot import CHECKPOINT_FORMAT, MemoryChatbot, UncheckedCheckpointWarning, checkpoint_digest  # noqa: F401
