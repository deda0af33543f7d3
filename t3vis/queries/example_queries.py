"""Example queries that work on any t3vis store: the SQL console's menu, tested on real stores.

Each entry: a title, the SQL, and the columns it returns (documented, and checked by the tests).
Checkpoints are ordered by step (then ingestion time), so "the next checkpoint" is the next one in training.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExampleQuery:
    title: str
    sql: str
    columns: tuple[str, ...]
    task: str | None = None  # the runs it is about (t3vis.tasks); None: any run


_ORDERED = """ordered AS (
        SELECT run_id, checkpoint,
               row_number() OVER (PARTITION BY run_id ORDER BY step NULLS LAST, ingested_at) AS position
        FROM checkpoints)"""

EXAMPLE_QUERIES: tuple[ExampleQuery, ...] = (
    ExampleQuery(
        "Accuracy and loss per checkpoint",
        """SELECT p.run_id, p.checkpoint, c.step, p.split, count(*) AS n,
       avg(p.correct::INT) AS accuracy, avg(p.loss) AS mean_loss
FROM predictions p JOIN checkpoints c USING (run_id, checkpoint)
GROUP BY ALL ORDER BY p.run_id, c.step, p.split""",
        ("run_id", "checkpoint", "step", "split", "n", "accuracy", "mean_loss"),
    ),
    ExampleQuery(
        "Per-class accuracy per checkpoint",
        """SELECT p.run_id, p.checkpoint, c.step, e.label_name, count(*) AS n, avg(p.correct::INT) AS accuracy
FROM predictions p
JOIN examples e USING (run_id, split, example_id)
JOIN checkpoints c USING (run_id, checkpoint)
GROUP BY ALL ORDER BY p.run_id, c.step, e.label_name""",
        ("run_id", "checkpoint", "step", "label_name", "n", "accuracy"),
    ),
    ExampleQuery(
        "Examples right at one checkpoint and wrong at the next",
        f"""WITH {_ORDERED}
SELECT a.run_id, a.split, a.example_id, a.checkpoint AS right_at, b.checkpoint AS wrong_at,
       e.label_name, r.label_names[b.pred + 1] AS predicted_then, b.loss, e.text
FROM predictions a
JOIN ordered oa ON oa.run_id = a.run_id AND oa.checkpoint = a.checkpoint
JOIN ordered ob ON ob.run_id = a.run_id AND ob.position = oa.position + 1
JOIN predictions b ON b.run_id = a.run_id AND b.checkpoint = ob.checkpoint AND b.split = a.split
                  AND b.example_id = a.example_id
JOIN examples e ON e.run_id = a.run_id AND e.split = a.split AND e.example_id = a.example_id
JOIN runs r ON r.run_id = a.run_id
WHERE a.correct AND NOT b.correct
ORDER BY a.run_id, oa.position, b.loss DESC
LIMIT 500""",
        ("run_id", "split", "example_id", "right_at", "wrong_at", "label_name", "predicted_then", "loss", "text"),
    ),
    ExampleQuery(
        "Hard-to-learn training examples (Data Map)",
        """SELECT d.run_id, d.example_id, e.label_name, d.confidence, d.variability, d.correctness,
       d.forgetting_events, e.text
FROM data_map d JOIN examples e USING (run_id, split, example_id)
WHERE d.region = 'hard-to-learn'
ORDER BY d.run_id, d.confidence
LIMIT 500""",
        ("run_id", "example_id", "label_name", "confidence", "variability", "correctness", "forgetting_events",
         "text"),
    ),
    ExampleQuery(
        "The five most important heads per checkpoint",
        """SELECT h.run_id, h.checkpoint, c.step, h.layer, h.head, h.importance_global, a.attn_cls, a.entropy
FROM head_importance h
JOIN checkpoints c USING (run_id, checkpoint)
LEFT JOIN attention_patterns a USING (run_id, checkpoint, split, layer, head)
QUALIFY row_number() OVER (PARTITION BY h.run_id, h.checkpoint ORDER BY h.importance DESC) <= 5
ORDER BY h.run_id, c.step, h.importance_global DESC""",
        ("run_id", "checkpoint", "step", "layer", "head", "importance_global", "attn_cls", "entropy"),
    ),
    ExampleQuery(
        "Data Map regions",
        """SELECT run_id, region, count(*) AS n, avg(confidence) AS confidence, avg(variability) AS variability,
       avg(correctness) AS correctness
FROM data_map GROUP BY ALL ORDER BY run_id, region""",
        ("run_id", "region", "n", "confidence", "variability", "correctness"),
    ),
    ExampleQuery(
        "The important heads and what they do (head functions)",
        """SELECT h.run_id, h.checkpoint, h.layer, h.head, round(h.importance_global, 3) AS importance,
       round(a.attn_same_token, 3) AS same_token, round(a.attn_same_sentence, 3) AS same_sentence,
       round(a.attn_adjacent, 3) AS adjacent, round(a.attn_special, 3) AS special, round(a.attn_self, 3) AS self,
       round(a.attn_prev, 3) AS previous_token, round(a.attn_induction, 3) AS induction
FROM head_importance h JOIN attention_patterns a USING (run_id, checkpoint, split, layer, head)
QUALIFY row_number() OVER (PARTITION BY h.run_id, h.checkpoint ORDER BY h.importance DESC) <= 10
ORDER BY h.run_id, h.checkpoint, importance DESC""",
        ("run_id", "checkpoint", "layer", "head", "importance", "same_token", "same_sentence", "adjacent", "special",
         "self", "previous_token", "induction"),
    ),
    ExampleQuery(
        "ROUGE per checkpoint, beside Lead-3 and the oracle (summarization)",
        """WITH model AS (
    SELECT s.run_id, s.split, s.checkpoint AS system, c.step, avg(s.rouge1) AS rouge1, avg(s.rouge2) AS rouge2,
           avg(s.rougeL) AS rougeL, count(*) AS documents
    FROM document_scores s JOIN checkpoints c USING (run_id, checkpoint) GROUP BY ALL)
SELECT * FROM model
UNION ALL
SELECT run_id, split, system, NULL AS step, avg(rouge1), avg(rouge2), avg(rougeL), count(*)
FROM baseline_scores GROUP BY ALL
ORDER BY run_id, split, step NULLS LAST, system""",
        ("run_id", "split", "system", "step", "rouge1", "rouge2", "rougeL", "documents"),
        task="extractive-summarization",
    ),
    ExampleQuery(
        "Sentences ranked high that the oracle leaves out (summarization)",
        """SELECT p.run_id, p.checkpoint, p.example_id, p.unit, p.rank, round(p.prob, 3) AS prob, u.text
FROM unit_predictions p JOIN units u USING (run_id, split, example_id, unit)
WHERE p.selected AND u.label = 0
ORDER BY p.run_id, p.checkpoint, p.prob DESC
LIMIT 500""",
        ("run_id", "checkpoint", "example_id", "unit", "rank", "prob", "text"),
        task="extractive-summarization",
    ),
    ExampleQuery(
        "Sentence Data Map regions by position in the document (summarization)",
        """SELECT d.run_id, least(d.unit, 10) AS position, d.region, count(*) AS sentences,
       avg(u.label) AS oracle_share
FROM data_map d JOIN units u USING (run_id, split, example_id, unit)
GROUP BY ALL ORDER BY d.run_id, position, d.region""",
        ("run_id", "position", "region", "sentences", "oracle_share"),
        task="extractive-summarization",
    ),
    ExampleQuery(
        "The words most confidently tagged wrong (token classification)",
        """SELECT p.run_id, p.checkpoint, p.example_id, p.unit, u.text AS word,
       r.label_names[u.label + 1] AS gold, r.label_names[p.pred + 1] AS predicted, round(p.prob, 3) AS confidence,
       left(e.text, 120) AS sentence
FROM unit_predictions p
JOIN units u USING (run_id, split, example_id, unit)
JOIN examples e USING (run_id, split, example_id)
JOIN runs r USING (run_id)
WHERE r.task = 'token-classification' AND NOT p.correct
ORDER BY p.run_id, p.checkpoint, p.prob DESC
LIMIT 500""",
        ("run_id", "checkpoint", "example_id", "unit", "word", "gold", "predicted", "confidence", "sentence"),
        task="token-classification",
    ),
    ExampleQuery(
        "Entities per region of the Data Map (token classification)",
        """WITH spans AS (
    SELECT s.run_id, s.split, s.example_id, s.first_unit, s.entity_type,
           avg(d.confidence) AS confidence, avg(d.variability) AS variability
    FROM entity_spans s
    JOIN data_map d ON d.run_id = s.run_id AND d.split = s.split AND d.example_id = s.example_id
                   AND d.unit BETWEEN s.first_unit AND s.last_unit
    GROUP BY ALL),
ranked AS (
    SELECT *, percent_rank() OVER (PARTITION BY run_id, split ORDER BY variability) AS variability_rank,
              percent_rank() OVER (PARTITION BY run_id, split ORDER BY confidence) AS confidence_rank
    FROM spans)
SELECT run_id, entity_type,
       CASE WHEN variability_rank >= 2.0 / 3 THEN 'ambiguous' WHEN confidence_rank <= 1.0 / 3 THEN 'hard-to-learn'
            WHEN confidence_rank >= 2.0 / 3 THEN 'easy-to-learn' ELSE 'other' END AS region,
       count(*) AS entities, round(avg(confidence), 3) AS mean_confidence
FROM ranked GROUP BY ALL ORDER BY run_id, entity_type, region""",
        ("run_id", "entity_type", "region", "entities", "mean_confidence"),
        task="token-classification",
    ),
    ExampleQuery(
        "Entity F1 per type and checkpoint (token classification)",
        """SELECT c.run_id, c.checkpoint, c.step, s.split, t.entity_type,
       round(CAST(json_extract(s.scores, '$.per_type."' || t.entity_type || '".f1') AS DOUBLE), 4) AS f1,
       CAST(json_extract(s.scores, '$.per_type."' || t.entity_type || '".support') AS INTEGER) AS support
FROM checkpoints c
JOIN runs r USING (run_id)
CROSS JOIN LATERAL (SELECT key AS split, value AS scores FROM json_each(c.metrics) WHERE key <> 'trainer') s
CROSS JOIN LATERAL (SELECT unnest(json_keys(s.scores, '$.per_type')) AS entity_type) t
WHERE r.task = 'token-classification'
ORDER BY c.run_id, c.step, s.split, t.entity_type""",
        ("run_id", "checkpoint", "step", "split", "entity_type", "f1", "support"),
        task="token-classification",
    ),
    ExampleQuery(
        "Loss, perplexity, token accuracy and score per checkpoint (generation)",
        """SELECT c.run_id, c.checkpoint, c.step, s.split,
       round(CAST(s.scores->>'loss' AS DOUBLE), 4) AS loss,
       round(CAST(s.scores->>'perplexity' AS DOUBLE), 2) AS perplexity,
       round(CAST(s.scores->>'accuracy' AS DOUBLE), 4) AS token_accuracy,
       round(CAST(s.scores->>'score' AS DOUBLE), 4) AS score,
       round(CAST(s.scores->>'exact_match' AS DOUBLE), 4) AS exact_match,
       round(CAST(s.scores->>'rougeL' AS DOUBLE), 4) AS rougeL,
       CAST(s.scores->>'n_examples' AS INTEGER) AS examples
FROM checkpoints c
JOIN runs r USING (run_id)
CROSS JOIN LATERAL (SELECT key AS split, value AS scores FROM json_each(c.metrics) WHERE key <> 'trainer') s
WHERE r.task = 'generation'
ORDER BY c.run_id, c.step, s.split""",
        ("run_id", "checkpoint", "step", "split", "loss", "perplexity", "token_accuracy", "score", "exact_match",
         "rougeL", "examples"),
        task="generation",
    ),
    ExampleQuery(
        "Examples whose loss went up from one checkpoint to the next, then the others (generation)",
        f"""WITH {_ORDERED}
SELECT a.run_id, a.split, a.example_id, a.checkpoint AS from_checkpoint, b.checkpoint AS to_checkpoint,
       b.loss > a.loss AS went_up, round(b.loss - a.loss, 4) AS rise, round(a.loss, 4) AS loss_before,
       round(b.loss, 4) AS loss_after, a.score AS score_before, b.score AS score_after, e.text AS prompt,
       b.generation AS generation_after
FROM generations a
JOIN ordered oa ON oa.run_id = a.run_id AND oa.checkpoint = a.checkpoint
JOIN ordered ob ON ob.run_id = a.run_id AND ob.position = oa.position + 1
JOIN generations b ON b.run_id = a.run_id AND b.checkpoint = ob.checkpoint AND b.split = a.split
                  AND b.example_id = a.example_id
JOIN examples e ON e.run_id = a.run_id AND e.split = a.split AND e.example_id = a.example_id
ORDER BY a.run_id, oa.position, rise DESC
LIMIT 500""",
        ("run_id", "split", "example_id", "from_checkpoint", "to_checkpoint", "went_up", "rise", "loss_before",
         "loss_after", "score_before", "score_after", "prompt", "generation_after"),
        task="generation",
    ),
    ExampleQuery(
        "Completion tokens most confidently wrong (generation)",
        """WITH vocabulary AS (  -- a token id's text, where some reference completion of the run has that token
    SELECT run_id, label AS token_id, any_value(text) AS token FROM units GROUP BY ALL)
SELECT p.run_id, p.checkpoint, p.split, p.example_id, p.unit, u.text AS reference_token,
       p.gold_prob AS reference_prob, p.rank AS reference_rank, p.pred AS predicted_id,
       v.token AS predicted_token, round(p.prob, 4) AS confidence, left(e.text, 120) AS prompt
FROM unit_predictions p
JOIN units u USING (run_id, split, example_id, unit)
JOIN examples e USING (run_id, split, example_id)
JOIN runs r USING (run_id)
LEFT JOIN vocabulary v ON v.run_id = p.run_id AND v.token_id = p.pred
WHERE r.task = 'generation' AND NOT p.correct
ORDER BY p.run_id, p.checkpoint, p.prob DESC
LIMIT 500""",
        ("run_id", "checkpoint", "split", "example_id", "unit", "reference_token", "reference_prob",
         "reference_rank", "predicted_id", "predicted_token", "confidence", "prompt"),
        task="generation",
    ),
    ExampleQuery(
        "Hard-to-learn prompts (generation Data Map)",
        """SELECT d.run_id, d.example_id, round(d.confidence, 6) AS confidence, round(d.variability, 6) AS variability,
       round(d.correctness, 3) AS token_accuracy, d.forgetting_events, e.text AS prompt, e.reference
FROM data_map d
JOIN examples e USING (run_id, split, example_id)
JOIN runs r USING (run_id)
WHERE r.task = 'generation' AND d.region = 'hard-to-learn'
ORDER BY d.run_id, d.confidence
LIMIT 500""",
        ("run_id", "example_id", "confidence", "variability", "token_accuracy", "forgetting_events", "prompt",
         "reference"),
        task="generation",
    ),
    ExampleQuery(
        "Per-token training dynamics of one example (generation)",
        """WITH chosen AS (  -- the training example to look at: the first; write e.g. 7 AS example_id for another
    SELECT run_id, split, min(example_id) AS example_id FROM token_dynamics GROUP BY ALL)
SELECT t.run_id, t.example_id, t.token, u.text AS reference_token, t.epoch, t.gold_prob,
       t.rank, t.pred AS predicted_id, t.correct
FROM token_dynamics t
JOIN chosen c USING (run_id, split, example_id)
LEFT JOIN units u ON u.run_id = t.run_id AND u.split = t.split AND u.example_id = t.example_id AND u.unit = t.token
ORDER BY t.run_id, t.token, t.epoch""",
        ("run_id", "example_id", "token", "reference_token", "epoch", "gold_prob", "rank", "predicted_id", "correct"),
        task="generation",
    ),
)
