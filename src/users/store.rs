//! The only code that reads and writes the `users` table.

use chrono::{DateTime, Utc};
use entity::user;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Statement,
};
use uuid::Uuid;

use crate::{
    auth::Role,
    db::{Page, fetch_page},
    error::{AppError, AppResult},
};

pub async fn find(db: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<user::Model>> {
    Ok(user::Entity::find_by_id(id).one(db).await?)
}

pub async fn find_by_username(
    db: &impl ConnectionTrait,
    username: &str,
) -> AppResult<Option<user::Model>> {
    Ok(user::Entity::find()
        .filter(user::Column::Username.eq(username))
        .one(db)
        .await?)
}

pub async fn get(db: &impl ConnectionTrait, id: Uuid) -> AppResult<user::Model> {
    find(db, id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no user with id {id}")))
}

/// Inserts a new, enabled user; a taken username is a `CONFLICT`.
pub async fn insert(
    conn: &impl ConnectionTrait,
    username: &str,
    password_hash: String,
    role: Role,
) -> AppResult<user::Model> {
    let now = Utc::now();
    let model = user::ActiveModel {
        id: Set(Uuid::now_v7()),
        username: Set(username.to_owned()),
        password_hash: Set(password_hash),
        role: Set(role.as_str().into()),
        disabled: Set(false),
        created_at: Set(now),
        updated_at: Set(now),
        password_changed_at: Set(now),
        last_login_at: Set(None),
        session_version: Set(0),
    };
    model.insert(conn).await.map_err(|e| match e.sql_err() {
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => {
            AppError::Conflict(format!("user '{username}' already exists"))
        }
        _ => AppError::Db(e),
    })
}

/// Sets the role and disabled flag given; the others stay.
pub async fn set_access(
    conn: &impl ConnectionTrait,
    current: user::Model,
    role: Option<Role>,
    disabled: Option<bool>,
) -> AppResult<user::Model> {
    let mut model: user::ActiveModel = current.into();
    if let Some(role) = role {
        model.role = Set(role.as_str().into());
    }
    if let Some(disabled) = disabled {
        model.disabled = Set(disabled);
    }
    model.updated_at = Set(Utc::now());
    Ok(model.update(conn).await?)
}

/// Raises the user's session version, ending every access token issued before.
pub async fn raise_session_version(conn: &impl ConnectionTrait, user_id: Uuid) -> AppResult<()> {
    user::Entity::update_many()
        .col_expr(
            user::Column::SessionVersion,
            sea_orm::sea_query::ExprTrait::add(
                sea_orm::sea_query::Expr::col(user::Column::SessionVersion),
                1,
            ),
        )
        .filter(user::Column::Id.eq(user_id))
        .exec(conn)
        .await?;
    Ok(())
}

pub async fn set_password_hash(
    conn: &impl ConnectionTrait,
    user: user::Model,
    hash: String,
) -> AppResult<user::Model> {
    let now = Utc::now();
    let mut model: user::ActiveModel = user.into();
    model.password_hash = Set(hash);
    model.password_changed_at = Set(now);
    model.updated_at = Set(now);
    Ok(model.update(conn).await?)
}

pub async fn set_last_login(
    conn: &impl ConnectionTrait,
    user: user::Model,
    at: DateTime<Utc>,
) -> AppResult<user::Model> {
    let mut model: user::ActiveModel = user.into();
    model.last_login_at = Set(Some(at));
    Ok(model.update(conn).await?)
}

pub async fn enabled_admins(conn: &impl ConnectionTrait) -> AppResult<u64> {
    Ok(user::Entity::find()
        .filter(user::Column::Role.eq(Role::Admin.as_str()))
        .filter(user::Column::Disabled.eq(false))
        .count(conn)
        .await?)
}

pub async fn count(conn: &impl ConnectionTrait) -> AppResult<u64> {
    Ok(user::Entity::find().count(conn).await?)
}

/// Serializes changes that could remove the last admin. Postgres locks the admin rows;
/// SQLite has one writer, so taking the write lock first is enough.
pub async fn lock_admins(conn: &impl ConnectionTrait) -> AppResult<()> {
    match conn.get_database_backend() {
        DbBackend::Postgres => {
            user::Entity::find()
                .select_only()
                .column(user::Column::Id)
                .filter(user::Column::Role.eq(Role::Admin.as_str()))
                .lock_exclusive()
                .into_tuple::<Uuid>()
                .all(conn)
                .await?;
        }
        backend => {
            conn.execute_raw(Statement::from_sql_and_values(
                backend,
                "UPDATE users SET role = role WHERE role = ?",
                [Role::Admin.as_str().into()],
            ))
            .await?;
        }
    }
    Ok(())
}

/// Users ordered by username, `page.first` of them after the cursor (a username).
pub async fn list(
    db: &impl ConnectionTrait,
    page: &Page,
    count_total: bool,
) -> AppResult<crate::db::Listed<user::Model>> {
    let total = if count_total { count(db).await? } else { 0 };
    let mut query = user::Entity::find().order_by_asc(user::Column::Username);
    if let Some(after) = &page.after {
        query = query.filter(user::Column::Username.gt(after.as_str()));
    }
    fetch_page(db, query, page, total).await
}
