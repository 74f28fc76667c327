//! How one sending IP does at each recipient provider, beside its pool: sent, delivered,
//! deferred and bounced with their rates, and why refusals happened, from the counters.

use std::collections::{BTreeMap, HashMap};

use async_graphql::SimpleObject;
use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;

use crate::error::{AppError, AppResult};

use super::{
    bounces::BounceCategory,
    model::MailCounts,
    query::tier_for_range,
    store::{
        self,
        counters::{CounterFilter, GroupColumn, GroupKey},
    },
};

/// Categories listed per provider, most frequent first.
const TOP_CATEGORIES: usize = 5;
const MAX_SPAN: chrono::Duration = chrono::Duration::days(400);

/// Refusals of one category.
#[derive(SimpleObject, Clone, Debug, PartialEq, Eq)]
pub struct CategoryCount {
    /// Why the deliveries were refused.
    pub category: BounceCategory,
    /// DEFERRED and BOUNCED events of this category.
    pub refusals: i64,
    /// Of those, BOUNCED.
    pub bounced: i64,
}

/// Sending to one provider.
#[derive(SimpleObject, Clone, Debug)]
pub struct ProviderDeliverability {
    /// The provider group (`gmail`, …, `other`).
    pub provider: String,
    /// Counts and rates (`sent`, `deliveredRate`, `deferredRate`, `bounceRate`).
    pub counts: MailCounts,
    /// Why deliveries were refused, most frequent first (at most 5).
    pub top_categories: Vec<CategoryCount>,
}

/// One IP's deliverability over a range, and its pool's for comparison.
#[derive(SimpleObject, Clone, Debug)]
pub struct Deliverability {
    /// Start of the first minute (or hour) counted.
    pub from: DateTime<Utc>,
    /// End of the range (exclusive).
    pub to: DateTime<Utc>,
    /// The IP's counts at every provider together.
    pub totals: MailCounts,
    /// Per provider, most attempts first.
    pub providers: Vec<ProviderDeliverability>,
    /// The IP's pool, if it is in one.
    pub pool: Option<String>,
    /// Every IP of the pool together (this one included); `null` without a pool.
    pub pool_totals: Option<MailCounts>,
    /// The pool per provider, most attempts first; empty without a pool.
    pub pool_providers: Vec<ProviderDeliverability>,
}

/// Counts per provider and category of `ips` over `from..to`.
async fn by_provider(
    db: &impl ConnectionTrait,
    ips: &[String],
    start: i64,
    end: i64,
    tier: store::counters::Tier,
) -> AppResult<(MailCounts, Vec<ProviderDeliverability>)> {
    // One step as long as the range: every row of it is summed whatever its step.
    let step_ms = (end - start).max(tier.span_ms());
    let rows = store::counters::steps(
        db,
        tier,
        step_ms,
        start,
        end,
        &[GroupColumn::Provider, GroupColumn::Category],
        &CounterFilter {
            sending_ips: Some(ips),
            ..CounterFilter::default()
        },
    )
    .await?;
    let mut totals = MailCounts::default();
    // Per provider: its counts, and per category (refusals, of which bounced).
    type ByCategory = BTreeMap<BounceCategory, (i64, i64)>;
    let mut providers: HashMap<String, (MailCounts, ByCategory)> = HashMap::new();
    for row in rows {
        let text = |key: Option<&GroupKey>| match key {
            Some(GroupKey::Text(text)) => text.clone(),
            _ => String::new(),
        };
        let (provider, category) = (text(row.keys.first()), text(row.keys.get(1)));
        totals.add(&row.counts);
        let entry = providers.entry(provider).or_default();
        entry.0.add(&row.counts);
        if let Ok(category) = BounceCategory::parse(&category) {
            let counted = entry.1.entry(category).or_default();
            counted.0 += row.counts.deferred + row.counts.bounced;
            counted.1 += row.counts.bounced;
        }
    }
    let mut providers: Vec<ProviderDeliverability> = providers
        .into_iter()
        .map(|(provider, (counts, categories))| {
            let mut top: Vec<CategoryCount> = categories
                .into_iter()
                .map(|(category, (refusals, bounced))| CategoryCount {
                    category,
                    refusals,
                    bounced,
                })
                .collect();
            top.sort_by(|a, b| {
                b.refusals
                    .cmp(&a.refusals)
                    .then(a.category.cmp(&b.category))
            });
            top.truncate(TOP_CATEGORIES);
            ProviderDeliverability {
                provider,
                counts,
                top_categories: top,
            }
        })
        .collect();
    providers.sort_by(|a, b| {
        b.counts
            .attempts()
            .cmp(&a.counts.attempts())
            .then_with(|| a.provider.cmp(&b.provider))
    });
    Ok((totals, providers))
}

/// `ip`'s deliverability over `from..to` (every minute or hour touched, counted whole), and
/// that of `pool` when it has one.
pub async fn deliverability(
    db: &impl ConnectionTrait,
    ip: &str,
    pool: Option<&str>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    minute_retention: std::time::Duration,
) -> AppResult<Deliverability> {
    if to <= from {
        return Err(AppError::bad_input("to", "must be after from"));
    }
    if to - from > MAX_SPAN {
        return Err(AppError::bad_input("from", "ranges are at most 400 days"));
    }
    let tier = tier_for_range(from, minute_retention);
    let start = from.timestamp_millis().div_euclid(tier.span_ms()) * tier.span_ms();
    let end = to.timestamp_millis();
    let (totals, providers) = by_provider(db, &[ip.to_owned()], start, end, tier).await?;
    let (pool_totals, pool_providers) = match pool {
        Some(pool) => {
            let ips = crate::ips::addresses_in_pools(db, &[pool.to_owned()]).await?;
            let (totals, providers) = by_provider(db, &ips, start, end, tier).await?;
            (Some(totals), providers)
        }
        None => (None, Vec::new()),
    };
    Ok(Deliverability {
        from: DateTime::<Utc>::from_timestamp_millis(start).unwrap_or(from),
        to,
        totals,
        providers,
        pool: pool.map(str::to_owned),
        pool_totals,
        pool_providers,
    })
}
