//! The inbox: a consumer records each message id in the same transaction as the message's
//! effect, so a redelivered message finds its id already there and has no second effect.

use sqlx::PgConnection;

/// Records `message_id` for `consumer`; false when it was already recorded (a redelivery).
pub async fn record(
    conn: &mut PgConnection,
    consumer: &str,
    message_id: &str,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO inbox (consumer, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(consumer)
    .bind(message_id)
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Records many message ids at once; returns those that were new (the others are
/// redeliveries). One round trip for a whole batch.
pub async fn record_many(
    conn: &mut PgConnection,
    consumer: &str,
    message_ids: &[String],
) -> Result<std::collections::HashSet<String>, sqlx::Error> {
    let fresh: Vec<String> = sqlx::query_scalar(
        "INSERT INTO inbox (consumer, message_id) SELECT $1, unnest($2::text[]) \
         ON CONFLICT DO NOTHING RETURNING message_id",
    )
    .bind(consumer)
    .bind(message_ids)
    .fetch_all(conn)
    .await?;
    Ok(fresh.into_iter().collect())
}
