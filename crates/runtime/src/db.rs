//! The database: one pool per service, working in the service's own schema as the service's
//! own role, which has no rights on any other schema (DESIGN §4).
//!
//! When the configured user may create roles (development, tests), start-up creates the role
//! and the schema it owns, and every pooled connection switches to that role with
//! `SET ROLE`. In a cluster the operator provisions a login role per service; the same code
//! then finds the role and schema already there.

use std::{str::FromStr, time::Duration};

use sqlx::{
    AssertSqlSafe, Executor, PgPool,
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions},
};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("REDRESS_DATABASE_URL ({url}) is not a valid Postgres URL: {source}")]
    Url { url: String, source: sqlx::Error },
    #[error(
        "cannot connect to Postgres at {url}: {source}. Check REDRESS_DATABASE_URL: is the \
         server running there (`make deps` starts a local one), and do its user, password and \
         TLS settings (sslmode, sslrootcert) match?"
    )]
    Connect { url: String, source: sqlx::Error },
    #[error("schema name `{0}` must be lower-case letters, digits and `_`, starting with a letter")]
    SchemaName(String),
    #[error("cannot prepare schema `{schema}`: {source}")]
    Bootstrap { schema: String, source: sqlx::Error },
    #[error("migrations of schema `{schema}` failed: {source}")]
    Migrate {
        schema: String,
        source: sqlx::migrate::MigrateError,
    },
}

/// The runtime's own tables (outbox, inbox), created in every service's schema.
static RUNTIME_MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// The schema a service works in: its own name, behind the namespace when there is one, so
/// two environments sharing one Postgres never share a table (nor an outbox).
pub fn schema_name(namespace: &str, schema: &str) -> String {
    if namespace.is_empty() {
        schema.to_owned()
    } else {
        format!("{namespace}_{schema}")
    }
}

/// A service's pool, bound to its schema and role.
#[derive(Clone, Debug)]
pub struct Database {
    pool: PgPool,
    schema: String,
    options: PgConnectOptions,
    init: String,
}

impl Database {
    /// Connects, prepares the schema and its owner role, and runs the runtime's migrations
    /// and then the service's, each under Postgres's advisory lock so replicas may start
    /// together. `role` is the service's role (its schema's name without a namespace).
    pub async fn connect(
        url: &str,
        role: &str,
        schema: &str,
        max_connections: u32,
        migrations: &Migrator,
    ) -> Result<Self, DbError> {
        validate_schema_name(role)?;
        validate_schema_name(schema)?;
        let shown = crate::config::mask_url(url);
        let options = PgConnectOptions::from_str(url).map_err(|source| DbError::Url {
            url: shown.clone(),
            source,
        })?;
        let switch_role = bootstrap(&options, role, schema, &shown).await?;

        let init = if switch_role {
            format!("SET ROLE {role}; SET search_path TO {schema}")
        } else {
            format!("SET search_path TO {schema}")
        };
        let pool = pool(&options, &init, max_connections, &shown).await?;
        let database = Self {
            pool,
            schema: schema.to_owned(),
            options,
            init,
        };
        database
            .migrate(&RUNTIME_MIGRATIONS, "_runtime_migrations")
            .await?;
        database.migrate(migrations, "_migrations").await?;
        Ok(database)
    }

    async fn migrate(&self, migrations: &Migrator, table: &str) -> Result<(), DbError> {
        let mut migrator = Migrator::with_migrations(migrations.iter().cloned().collect());
        migrator.dangerous_set_table_name(format!("{}.{table}", self.schema));
        migrator
            .run(&self.pool)
            .await
            .map_err(|source| DbError::Migrate {
                schema: self.schema.clone(),
                source,
            })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A second, separate pool in the same schema and role, for short statements that must
    /// not wait behind the main pool's transactions (a counter taken outside them).
    pub async fn side_pool(&self, max_connections: u32) -> Result<PgPool, DbError> {
        let shown = format!(
            "{}/{}",
            self.options.get_host(),
            self.options.get_database().unwrap_or_default()
        );
        pool(&self.options, &self.init, max_connections, &shown).await
    }

    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// A 32-byte key of this service, made on first use and shared by its replicas through
    /// the schema (page-token signing).
    pub async fn key(&self, name: &str) -> Result<[u8; 32], sqlx::Error> {
        let mut fresh = [0u8; 32];
        getrandom::fill(&mut fresh).map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
        sqlx::query(
            "INSERT INTO runtime_keys (name, key) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(&fresh[..])
        .execute(&self.pool)
        .await?;
        let key: Vec<u8> = sqlx::query_scalar("SELECT key FROM runtime_keys WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        key.try_into()
            .map_err(|_| sqlx::Error::Protocol(format!("runtime key `{name}` is not 32 bytes")))
    }

    /// True when a trivial query answers within two seconds.
    pub async fn is_ready(&self) -> bool {
        let check = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&self.pool);
        matches!(
            tokio::time::timeout(Duration::from_secs(2), check).await,
            Ok(Ok(1))
        )
    }
}

async fn pool(
    options: &PgConnectOptions,
    init: &str,
    max_connections: u32,
    shown: &str,
) -> Result<PgPool, DbError> {
    let init = init.to_owned();
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(move |conn, _meta| {
            let init = init.clone();
            Box::pin(async move {
                conn.execute(AssertSqlSafe(init)).await?;
                Ok(())
            })
        })
        .connect_with(options.clone())
        .await
        .map_err(|source| DbError::Connect {
            url: shown.to_owned(),
            source,
        })
}

fn validate_schema_name(schema: &str) -> Result<(), DbError> {
    let mut chars = schema.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && schema.len() <= 63;
    if valid {
        Ok(())
    } else {
        Err(DbError::SchemaName(schema.to_owned()))
    }
}

/// Makes sure the role and schema exist. Returns whether connections must `SET ROLE`
/// (true when the configured user is not the service role itself).
async fn bootstrap(
    options: &PgConnectOptions,
    role: &str,
    schema: &str,
    shown: &str,
) -> Result<bool, DbError> {
    let error = |source| DbError::Bootstrap {
        schema: schema.to_owned(),
        source,
    };
    let mut conn = sqlx::ConnectOptions::connect(options)
        .await
        .map_err(|source| DbError::Connect {
            url: shown.to_owned(),
            source,
        })?;
    let (user, may_create_roles): (String, bool) = sqlx::query_as(
        "SELECT current_user::text, rolcreaterole OR rolsuper FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(&mut conn)
    .await
    .map_err(error)?;
    if user == role || !may_create_roles {
        // A provisioned deployment: the role and its schema are the operator's to create.
        conn.execute(AssertSqlSafe(format!(
            "CREATE SCHEMA IF NOT EXISTS {schema}"
        )))
        .await
        .map_err(error)?;
        return Ok(false);
    }
    // Parallel starts (replicas, tests) may race on these statements: each tolerates the
    // object appearing between its check and its creation.
    let statements = [
        format!(
            "DO $$ BEGIN CREATE ROLE {role} NOLOGIN; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        ),
        format!(
            "DO $$ BEGIN IF NOT pg_has_role(current_user, '{role}', 'MEMBER') THEN \
             GRANT {role} TO current_user; END IF; \
             EXCEPTION WHEN unique_violation THEN NULL; END $$"
        ),
        format!(
            "DO $$ BEGIN CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION {role}; \
             EXCEPTION WHEN duplicate_schema OR unique_violation THEN NULL; END $$"
        ),
    ];
    for statement in statements {
        conn.execute(AssertSqlSafe(statement))
            .await
            .map_err(error)?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_prefix_schemas() {
        assert_eq!(schema_name("", "intake"), "intake");
        assert_eq!(schema_name("staging", "intake"), "staging_intake");
    }

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(validate_schema_name("intake").is_ok());
        assert!(validate_schema_name("t_01").is_ok());
        assert!(validate_schema_name("Intake").is_err());
        assert!(validate_schema_name("a;drop").is_err());
        assert!(validate_schema_name("").is_err());
    }
}
