//! Applying many items at once: all of them in one transaction when they all succeed, each in
//! its own when one fails, so one bad item never holds back the others and nothing is applied
//! twice. Intake registers requests this way; the consumer applies messages this way.

use std::{future::Future, pin::Pin};

use sqlx::{PgConnection, PgPool};

/// The future of applying one item, borrowing the connection and the item.
pub type Applying<'c, R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send + 'c>>;

/// One result per item, in order. `apply` must have no effects outside `conn`: a failed
/// batch is rolled back and its items applied again one by one. (A boxed future rather than
/// an async closure, whose futures cannot yet be required to be `Send`.)
pub async fn together_or_alone<T, R, E>(
    pool: &PgPool,
    items: &[T],
    apply: impl for<'c> Fn(&'c mut PgConnection, &'c T) -> Applying<'c, R, E>,
) -> Vec<Result<R, E>>
where
    E: From<sqlx::Error>,
{
    if items.len() > 1
        && let Ok(results) = together(pool, items, &apply).await
    {
        return results.into_iter().map(Ok).collect();
    }
    let mut results = Vec::with_capacity(items.len());
    for item in items {
        results.push(alone(pool, item, &apply).await);
    }
    results
}

async fn together<T, R, E>(
    pool: &PgPool,
    items: &[T],
    apply: &impl for<'c> Fn(&'c mut PgConnection, &'c T) -> Applying<'c, R, E>,
) -> Result<Vec<R>, E>
where
    E: From<sqlx::Error>,
{
    let mut tx = pool.begin().await?;
    let mut results = Vec::with_capacity(items.len());
    for item in items {
        results.push(apply(&mut tx, item).await?);
    }
    tx.commit().await?;
    Ok(results)
}

async fn alone<T, R, E>(
    pool: &PgPool,
    item: &T,
    apply: &impl for<'c> Fn(&'c mut PgConnection, &'c T) -> Applying<'c, R, E>,
) -> Result<R, E>
where
    E: From<sqlx::Error>,
{
    let mut tx = pool.begin().await?;
    let result = apply(&mut tx, item).await?;
    tx.commit().await?;
    Ok(result)
}
