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
