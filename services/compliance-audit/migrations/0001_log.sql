-- The audit log: append-only. Entries and tree nodes are only ever inserted; a trigger refuses
-- UPDATE, DELETE and TRUNCATE whoever asks, and the service's own role gives up those
-- privileges (in a provisioned deployment an owner role runs migrations and grants the
-- service role only SELECT and INSERT — see the README). A superuser can still disable the
-- trigger: that is what the signed checkpoints and `redress audit verify` catch.

CREATE TABLE log_entries (
    -- 0-based position in the Merkle tree.
    leaf_index      bigint PRIMARY KEY CHECK (leaf_index >= 0),
    -- The event id (or a non-event's Nats-Msg-Id): each message is logged once.
    entry_key       text NOT NULL UNIQUE,
    stream          text NOT NULL,
    subject         text NOT NULL,
    stream_sequence bigint NOT NULL,
    event_type      text NOT NULL,
    -- Ids the event is about (aggregate, case, complaint), for ExportCase.
    case_id         text,
    complaint_id    text,
    -- The leaf: the event envelope's bytes as published (README: "Leaves").
    leaf            bytea NOT NULL,
    logged_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX log_entries_case ON log_entries (case_id) WHERE case_id IS NOT NULL;
CREATE INDEX log_entries_complaint ON log_entries (complaint_id) WHERE complaint_id IS NOT NULL;
CREATE INDEX log_entries_stream ON log_entries (stream, stream_sequence);

-- Complete subtrees only: (level, idx) covers leaves [idx·2^level, (idx+1)·2^level).
CREATE TABLE tree_nodes (
    level smallint NOT NULL CHECK (level BETWEEN 0 AND 63),
    idx   bigint NOT NULL CHECK (idx >= 0),
    hash  bytea NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (level, idx)
);

CREATE TABLE checkpoints (
    tree_size bigint PRIMARY KEY,
    root_hash bytea NOT NULL,
    note      text NOT NULL,
    signed_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER log_entries_append_only BEFORE UPDATE OR DELETE ON log_entries
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER log_entries_no_truncate BEFORE TRUNCATE ON log_entries
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER tree_nodes_append_only BEFORE UPDATE OR DELETE ON tree_nodes
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER tree_nodes_no_truncate BEFORE TRUNCATE ON tree_nodes
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- The role running this migration owns the tables; it gives up changing them.
REVOKE UPDATE, DELETE, TRUNCATE ON log_entries, tree_nodes, checkpoints FROM CURRENT_USER;
