-- The t3vis analysis store, schema version 6. Version 1 defined head_importance.importance differently;
-- version 2 had no tasks other than sequence classification; version 3 had no layouts of units; version 4
-- computed the Data Map on every query (a view); version 5 had no generation task (generations,
-- token_dynamics, training_dynamics.token_accuracy, attention_patterns.attn_induction). `t3vis upgrade`
-- converts all five.
--
-- Long-format tables, keyed by (run_id, checkpoint, split, example_id[, unit][, layer, head]),
-- so that ad-hoc SQL is a join on the key columns. A "unit" is one output of an example for tasks
-- with several (a sentence of a document in extractive summarization); example-level tasks have one. A "run" is one model being
-- fine-tuned on one dataset; a "checkpoint" is one saved state of it.
-- Every table and column is documented in README.md ("The store schema").
-- The loader (t3vis/store/database.py) runs this file once on a new store and then records
-- the version in t3vis_meta; a store of another version is refused, never migrated silently.

-- The store's metadata: its schema version and who created it.
CREATE TABLE t3vis_meta (
    key   VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);

-- One row per run: the model, the labels and how the run was recorded.
CREATE TABLE runs (
    run_id      VARCHAR PRIMARY KEY,
    model       VARCHAR NOT NULL,       -- base model: hub name or local path
    task        VARCHAR NOT NULL DEFAULT 'sequence-classification', -- 'sequence-classification', 'extractive-summarization', 'token-classification' or 'generation'
    dataset     VARCHAR,                -- free text, e.g. the data file's name
    label_names VARCHAR[] NOT NULL,     -- label_names[label + 1] is the name of label id `label`; empty for generation (the outputs are the vocabulary)
    num_layers  INTEGER NOT NULL,          -- Transformer layers
    num_heads   INTEGER NOT NULL,          -- attention heads per layer
    max_length  INTEGER NOT NULL,       -- tokens per example fed to the model (longer texts are truncated)
    config      JSON,                   -- recording options (pooling, layers, importance sample, ...)
    created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp -- when the run was first written
);

-- One row per ingested checkpoint of a run.
CREATE TABLE checkpoints (
    run_id      VARCHAR NOT NULL,
    checkpoint  VARCHAR NOT NULL,       -- name, e.g. 'checkpoint-500' or 'epoch-2'
    step        BIGINT,                 -- global optimisation step (orders the checkpoints)
    epoch       DOUBLE,                 -- training epoch at this checkpoint (fractional between epochs)
    path        VARCHAR,                -- folder of the weights, when on disk
    metrics     JSON,                   -- per split: {"validation": {"accuracy": .., "loss": .., "n_examples": ..}}, plus "trainer" log values
    ingested_at TIMESTAMP NOT NULL DEFAULT current_timestamp, -- when the checkpoint was written
    PRIMARY KEY (run_id, checkpoint)
);

-- One row per example of a split, written once per run and split.
CREATE TABLE examples (
    run_id        VARCHAR NOT NULL,
    split         VARCHAR NOT NULL,     -- 'train', 'validation', 'test', ...
    example_id    BIGINT NOT NULL,      -- from the id column, or the row number in the file (0-based)
    text          VARCHAR NOT NULL,        -- the text fed to the model (generation: the prompt, as the model reads it)
    text_pair     VARCHAR,              -- second text of pair tasks, else NULL
    label         INTEGER,              -- gold label id, 0-based; NULL for tasks labelled per unit (summarization)
    label_name    VARCHAR,              -- name of the gold label; NULL with label
    n_tokens      INTEGER NOT NULL,     -- tokens fed to the model, special tokens included
    n_tokens_full INTEGER NOT NULL,     -- tokens before truncation
    truncated     BOOLEAN NOT NULL,     -- n_tokens_full > n_tokens
    extra         JSON,                 -- the dataset's other columns, e.g. extra->>'flipped'
    reference     VARCHAR,              -- the reference summary (summarization), its sentences on separate lines;
                                        -- the reference completion (generation)
    PRIMARY KEY (run_id, split, example_id)
);

-- The output units of each example, for tasks with several per example: one row per sentence of a
-- document (extractive summarization), per word of a sentence (token classification) or per token of the
-- reference completion (generation), including the units cut at the model's limit.
CREATE TABLE units (
    run_id     VARCHAR NOT NULL,
    split      VARCHAR NOT NULL,
    example_id BIGINT NOT NULL,
    unit       INTEGER NOT NULL,        -- 0-based position in the example (sentence, word or completion token index)
    text       VARCHAR NOT NULL,        -- the unit's text (the sentence, the word, the token as decoded)
    label      INTEGER NOT NULL,        -- gold label: 1 = the greedy ROUGE oracle extracts the sentence; a word's tag id;
                                        -- generation: the reference token's id
    kept       BOOLEAN NOT NULL,        -- fed to the model (false: cut at the model's token limit)
    n_tokens   INTEGER NOT NULL,        -- word pieces of the unit, without special tokens (1 for a completion token)
    PRIMARY KEY (run_id, split, example_id, unit)
);

-- One row per checkpoint and example: the model's output.
CREATE TABLE predictions (
    run_id     VARCHAR NOT NULL,
    checkpoint VARCHAR NOT NULL,
    split      VARCHAR NOT NULL,
    example_id BIGINT NOT NULL,
    logits     FLOAT[] NOT NULL,        -- one per label
    probs      FLOAT[] NOT NULL,        -- softmax of logits
    pred       INTEGER NOT NULL,        -- argmax of logits
    gold_prob  FLOAT NOT NULL,          -- probability of the gold label
    confidence FLOAT NOT NULL,          -- probability of the predicted label (max of probs)
    loss       FLOAT NOT NULL,          -- cross-entropy of the gold label = -ln(gold_prob)
    correct    BOOLEAN NOT NULL,        -- pred = gold label
    PRIMARY KEY (run_id, checkpoint, split, example_id)
);

-- One row per checkpoint, example and kept unit: the model's output for each sentence (summarization), word
-- (token classification) or reference completion token (generation, teacher forced: the logits at the token
-- before it).
CREATE TABLE unit_predictions (
    run_id     VARCHAR NOT NULL,
    checkpoint VARCHAR NOT NULL,
    split      VARCHAR NOT NULL,
    example_id BIGINT NOT NULL,
    unit       INTEGER NOT NULL,        -- the sentence (summarization), word (token classification) or completion token (generation), as in units
    score      FLOAT NOT NULL,          -- summarization: the scorer's logit; token classification: the predicted tag's logit;
                                        -- generation: the log-probability of the reference token
    prob       FLOAT NOT NULL,          -- summarization: sigmoid(score), the probability of "in summary";
                                        -- token classification and generation: the predicted tag's (token's) probability (confidence)
    pred       INTEGER NOT NULL,        -- predicted label: summarization 1 when prob >= 0.5; tagging the argmax tag id;
                                        -- generation: the argmax token id
    gold_prob  FLOAT NOT NULL,          -- probability of the gold label (generation: of the reference token)
    loss       FLOAT NOT NULL,          -- cross-entropy of the gold label = -ln(gold_prob)
    correct    BOOLEAN NOT NULL,        -- pred = gold label
    rank       INTEGER,                 -- summarization: 1 = the highest score of the document (NULL for tagging);
                                        -- generation: the reference token's rank in the vocabulary (1 = the argmax)
    selected   BOOLEAN,                 -- summarization: in the predicted summary (the 3 highest scores; NULL for tagging)
    probs      FLOAT[],                 -- token classification: the probability of every tag (label_names order); NULL for summarization
    PRIMARY KEY (run_id, checkpoint, split, example_id, unit)
);

-- One row per checkpoint and document: its loss and the ROUGE of its predicted summary.
-- ROUGE (rouge-score, stemmed) F1 of the predicted summary against the reference; rougeL is the
-- summary-level ROUGE-L (rougeLsum) that summarization papers report.
CREATE TABLE document_scores (
    run_id     VARCHAR NOT NULL,
    checkpoint VARCHAR NOT NULL,
    split      VARCHAR NOT NULL,
    example_id BIGINT NOT NULL,
    loss       FLOAT NOT NULL,          -- mean binary cross-entropy over the kept sentences
    rouge1     FLOAT NOT NULL,          -- ROUGE-1 F1 of the predicted summary
    rouge2     FLOAT NOT NULL,          -- ROUGE-2 F1
    rougeL     FLOAT NOT NULL,          -- ROUGE-L (summary-level) F1
    summary    INTEGER[] NOT NULL,      -- the predicted summary's sentence indices, in document order
    PRIMARY KEY (run_id, checkpoint, split, example_id)
);

-- Generation runs: one row per checkpoint and example. The reference completion scored teacher forced, and
-- the checkpoint's greedy generation from the prompt scored against it.
CREATE TABLE generations (
    run_id           VARCHAR NOT NULL,
    checkpoint       VARCHAR NOT NULL,
    split            VARCHAR NOT NULL,
    example_id       BIGINT NOT NULL,
    loss             FLOAT NOT NULL,    -- mean negative log-probability of the kept reference completion tokens
    perplexity       FLOAT NOT NULL,    -- exp(loss)
    token_accuracy   FLOAT NOT NULL,    -- share of the reference tokens the teacher-forced argmax predicts
    n_tokens         INTEGER NOT NULL,  -- reference completion tokens scored (kept)
    generation       VARCHAR,           -- the greedy generation (NULL: not generated, --max-new-tokens 0)
    generated_ids    INTEGER[],         -- its token ids (the stop token excluded)
    stopped          BOOLEAN,           -- the generation ended with a stop token (false: --max-new-tokens reached)
    answer           VARCHAR,           -- the generation's final answer: after '####' (GSM8K), else its last number; NULL without
    reference_answer VARCHAR,           -- the reference's final answer, NULL without one
    exact_match      BOOLEAN,           -- answer = reference_answer (NULL when the reference has no final answer)
    rougeL           FLOAT,             -- ROUGE-L F1 of the generation against the reference completion
    score            FLOAT,             -- exact_match as 1/0 where the reference has a final answer, else rougeL
    PRIMARY KEY (run_id, checkpoint, split, example_id)
);

-- Reference systems per document, written once per run and split: 'lead-3' (the first three
-- sentences) and 'oracle' (the greedy ROUGE oracle's sentences, an upper bound for extraction).
CREATE TABLE baseline_scores (
    run_id     VARCHAR NOT NULL,
    split      VARCHAR NOT NULL,
    example_id BIGINT NOT NULL,
    system     VARCHAR NOT NULL,        -- 'lead-3' or 'oracle'
    rouge1     FLOAT NOT NULL,          -- ROUGE-1 F1 against the reference
    rouge2     FLOAT NOT NULL,          -- ROUGE-2 F1
    rougeL     FLOAT NOT NULL,          -- ROUGE-L (summary-level) F1
    summary    INTEGER[] NOT NULL,      -- the system's sentence indices
    PRIMARY KEY (run_id, split, example_id, system)
);

-- 2-D layouts of pooled hidden states: one row per checkpoint, layer, method and example.
CREATE TABLE projections (
    run_id     VARCHAR NOT NULL,
    checkpoint VARCHAR NOT NULL,
    split      VARCHAR NOT NULL,
    layer      INTEGER NOT NULL,        -- 0 = embeddings, 1..num_layers = output of that Transformer layer
    method     VARCHAR NOT NULL,        -- 'tsne' (openTSNE) or 'pca'
    pooling    VARCHAR NOT NULL,        -- 'cls' (first token) or 'mean' (over real tokens)
    example_id BIGINT NOT NULL,
    x          FLOAT NOT NULL,             -- first coordinate of the 2-D layout
    y          FLOAT NOT NULL,             -- second coordinate of the 2-D layout
    PRIMARY KEY (run_id, checkpoint, split, layer, method, pooling, example_id)
);

-- 2-D layouts of units: one row per checkpoint, layer, method and unit. A unit's vector is the hidden state at
-- its own [CLS] token (a document's sentence) or at its first word piece (a word); only kept units have one.
CREATE TABLE unit_projections (
    run_id     VARCHAR NOT NULL,
    checkpoint VARCHAR NOT NULL,
    split      VARCHAR NOT NULL,
    layer      INTEGER NOT NULL,        -- 0 = embeddings, 1..num_layers = output of that Transformer layer
    method     VARCHAR NOT NULL,        -- 'tsne' (openTSNE) or 'pca'
    example_id BIGINT NOT NULL,
    unit       INTEGER NOT NULL,        -- the sentence or word index, as in units
    x          FLOAT NOT NULL,          -- first coordinate of the 2-D layout
    y          FLOAT NOT NULL,          -- second coordinate of the 2-D layout
    PRIMARY KEY (run_id, checkpoint, split, layer, method, example_id, unit)
);

-- Head importance (Michel et al. 2019; T3-Vis appendix A.1): one row per checkpoint, layer and head.
CREATE TABLE head_importance (
    run_id                VARCHAR NOT NULL,
    checkpoint            VARCHAR NOT NULL,
    split                 VARCHAR NOT NULL,   -- the split the importance was measured on
    layer                 INTEGER NOT NULL,   -- 0-based Transformer layer
    head                  INTEGER NOT NULL,   -- 0-based head
    importance            DOUBLE NOT NULL,    -- mean over examples x of |dL(x)/dm|, L(x) = the task's loss of x (cross-entropy; mean sentence BCE for summarization), m = the head's mask
    importance_layer_norm DOUBLE NOT NULL,    -- importance / L2 norm of its layer's importances (Michel et al.)
    importance_global     DOUBLE NOT NULL,    -- importance / max importance over all heads, in [0, 1]
    n_examples            INTEGER NOT NULL,   -- examples the mean is taken over
    PRIMARY KEY (run_id, checkpoint, split, layer, head)
);

-- Aggregate attention per checkpoint, layer and head, averaged over a split's examples.
-- pattern: a bins x bins matrix, row-major: entry [q * bins + k] is the mean attention that a
-- query token in relative position bin q (position / length) gives to all key tokens in bin k.
-- Rows sum to 1. Padding is excluded; the scalar columns are means over real query tokens.
CREATE TABLE attention_patterns (
    run_id       VARCHAR NOT NULL,
    checkpoint   VARCHAR NOT NULL,
    split        VARCHAR NOT NULL,
    layer        INTEGER NOT NULL,
    head         INTEGER NOT NULL,
    bins         INTEGER NOT NULL,         -- side of the pattern grid
    pattern      FLOAT[] NOT NULL,       -- bins * bins values
    attn_cls     FLOAT NOT NULL,         -- mean attention to the first token ([CLS] / <s>)
    attn_sep     FLOAT NOT NULL,         -- mean attention to separator tokens ([SEP] / </s>)
    attn_self    FLOAT NOT NULL,         -- mean attention to the token itself
    attn_prev    FLOAT NOT NULL,         -- mean attention to the previous token (over tokens that have one): the
                                         -- previous-token head function
    attn_next    FLOAT NOT NULL,         -- mean attention to the next token
    entropy      FLOAT NOT NULL,         -- mean entropy of an attention row, in nats
    attn_same_token    FLOAT,            -- head function: mean attention to other occurrences of the same token (NULL: ingested before version 3)
    attn_same_sentence FLOAT,            -- head function: mean attention to tokens of the same sentence (up to a separator)
    attn_adjacent      FLOAT,            -- head function: mean attention to the adjacent tokens (-1 and +1)
    attn_special       FLOAT,            -- head function: mean attention to special tokens ([CLS], [SEP], ...)
    attn_induction     FLOAT,            -- head function: mean attention to the token after an earlier occurrence of
                                         -- the query's token (induction heads), over queries that have one (NULL before version 6)
    n_examples   INTEGER NOT NULL,         -- examples averaged (a random sample of whole batches)
    PRIMARY KEY (run_id, checkpoint, split, layer, head)
);

-- Training dynamics (Swayamdipta et al. 2020): one row per training example (and unit) and epoch.
-- Taken from the training forward passes themselves.
CREATE TABLE training_dynamics (
    run_id     VARCHAR NOT NULL,
    split      VARCHAR NOT NULL DEFAULT 'train',
    example_id BIGINT NOT NULL,
    unit       INTEGER NOT NULL DEFAULT 0, -- the sentence of a document (summarization); 0 for example-level tasks
    epoch      INTEGER NOT NULL,         -- 0-based epoch
    gold_prob  FLOAT NOT NULL,           -- probability of the gold label when the example was trained on;
                                         -- generation: exp(mean log-probability of the completion tokens)
    pred       INTEGER NOT NULL,           -- predicted label id; generation: completion tokens predicted right
    correct    BOOLEAN NOT NULL,           -- pred = gold label; generation: every completion token predicted right
    loss       FLOAT NOT NULL,             -- cross-entropy of the gold label; generation: mean over completion tokens
    token_accuracy FLOAT,                  -- generation: share of the completion tokens predicted right; NULL otherwise
    PRIMARY KEY (run_id, split, example_id, unit, epoch)
);

-- Training dynamics of generation runs per completion token: one row per training example, completion token
-- and epoch, from the training forward passes (teacher forced: the logits at the token before it).
CREATE TABLE token_dynamics (
    run_id     VARCHAR NOT NULL,
    split      VARCHAR NOT NULL DEFAULT 'train',
    example_id BIGINT NOT NULL,
    token      INTEGER NOT NULL,          -- 0-based position in the completion
    epoch      INTEGER NOT NULL,          -- 0-based epoch
    token_id   INTEGER NOT NULL,          -- the gold token's id
    gold_prob  FLOAT NOT NULL,            -- probability of the gold token
    rank       INTEGER,                   -- the gold token's rank in the vocabulary (1 = the argmax); NULL when the
                                          -- training pass gave no logits (TRL's fused LM head gives log-probabilities)
    pred       INTEGER,                   -- the argmax token id; NULL likewise
    correct    BOOLEAN NOT NULL,          -- the gold token is the argmax (rank = 1)
    PRIMARY KEY (run_id, split, example_id, token, epoch)
);

-- The Data Map: one row per training example (per unit: a sentence of a document, a word of a sentence).
-- confidence = mean gold_prob over epochs; variability = population std of gold_prob over epochs;
-- correctness = fraction of epochs predicted right (generation: mean over epochs of the share of completion
-- tokens predicted right); forgetting_events = epochs where a correct prediction became wrong (Toneva et al.
-- 2019). For generation a point is an example and its gold probability exp(mean log-probability of the
-- completion tokens), so confidence is the mean over epochs of that geometric mean.
-- region: 'ambiguous' = top third by variability; otherwise 'hard-to-learn' = bottom third by
-- confidence, 'easy-to-learn' = top third by confidence; else 'other' (thirds within run and split).
-- Materialised: a run and split's rows are computed again from training_dynamics in the same transaction
-- that writes an epoch of its dynamics, so reading it costs no aggregation.
CREATE TABLE data_map (
    run_id            VARCHAR NOT NULL,
    split             VARCHAR NOT NULL,
    example_id        BIGINT NOT NULL,
    unit              INTEGER NOT NULL,
    n_epochs          INTEGER NOT NULL,   -- epochs the example was seen in
    confidence        DOUBLE NOT NULL,    -- mean gold-label probability over epochs
    variability       DOUBLE NOT NULL,    -- population std of the gold-label probability over epochs
    correctness       DOUBLE NOT NULL,    -- fraction of epochs predicted right (generation: mean token accuracy)
    forgetting_events INTEGER NOT NULL,   -- epochs where a right prediction turned wrong
    region            VARCHAR NOT NULL,   -- 'easy-to-learn', 'ambiguous', 'hard-to-learn' or 'other'
    PRIMARY KEY (run_id, split, example_id, unit)
);

-- Gold entity spans of token-classification runs (IOB2 tags in runs.label_names): one row per span, its
-- words first_unit..last_unit of the sentence. A span starts at a B- tag, or at an I- tag that does not
-- continue a span of its type; it goes on over the I- tags of its type.
CREATE VIEW entity_spans AS
WITH tagged AS (
    SELECT u.run_id, u.split, u.example_id, u.unit, u.text, r.label_names[u.label + 1] AS tag
    FROM units u JOIN runs r ON r.run_id = u.run_id
    WHERE r.task = 'token-classification'
),
marked AS (
    SELECT *, lag(tag) OVER (PARTITION BY run_id, split, example_id ORDER BY unit) AS previous_tag
    FROM tagged
),
numbered AS (
    SELECT *, sum(CASE WHEN tag LIKE 'B-%' OR previous_tag IS NULL OR previous_tag = 'O'
                            OR substr(previous_tag, 3) <> substr(tag, 3) THEN 1 ELSE 0 END)
                  OVER (PARTITION BY run_id, split, example_id ORDER BY unit) AS span_number
    FROM marked
    WHERE tag LIKE 'B-%' OR tag LIKE 'I-%'
)
SELECT run_id, split, example_id, min(unit) AS first_unit, max(unit) AS last_unit, count(*) AS n_words,
       arg_min(substr(tag, 3), unit) AS entity_type, string_agg(text, ' ' ORDER BY unit) AS text
FROM numbered
GROUP BY run_id, split, example_id, span_number;
