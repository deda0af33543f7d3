"""The tasks t3vis records: the names stored in ``runs.task``, shared by every layer."""

SEQUENCE_CLASSIFICATION = "sequence-classification"  # one label per example (or text pair)
EXTRACTIVE_SUMMARIZATION = "extractive-summarization"  # one binary label per sentence of a document (BertSum)
TASKS = (SEQUENCE_CLASSIFICATION, EXTRACTIVE_SUMMARIZATION)

SUMMARY_LABELS = ("not in summary", "in summary")  # the label names of a sentence
