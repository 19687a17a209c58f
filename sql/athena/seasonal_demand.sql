-- Seasonal demand from gold/order_features: by month of year, by weekday, and in the holiday
-- season (transform.holiday_season, e.g. Black-Friday week and December) against the rest.
-- purchase_weekday is 1 = Sunday ... 7 = Saturday.  Revenue = price * quantity.
-- Runs unchanged on Athena (engine v3) and Spark SQL.

-- name: by_month_of_year
-- All years together; revenue_share is the month's share of all revenue.
WITH per_month AS (
    SELECT purchase_month,
           count(DISTINCT order_id) AS n_orders,
           sum(quantity) AS units,
           sum(price * quantity) AS revenue
    FROM ecomrec.order_features
    WHERE purchase_month IS NOT NULL
    GROUP BY purchase_month
)
SELECT purchase_month, n_orders, units, revenue,
       revenue / nullif(sum(revenue) OVER (), 0) AS revenue_share
FROM per_month
ORDER BY purchase_month;

-- name: by_weekday
SELECT purchase_weekday,
       CASE purchase_weekday WHEN 1 THEN 'Sun' WHEN 2 THEN 'Mon' WHEN 3 THEN 'Tue' WHEN 4 THEN 'Wed'
                             WHEN 5 THEN 'Thu' WHEN 6 THEN 'Fri' WHEN 7 THEN 'Sat' END AS weekday,
       count(DISTINCT order_id) AS n_orders,
       sum(quantity) AS units,
       sum(price * quantity) AS revenue
FROM ecomrec.order_features
WHERE purchase_weekday IS NOT NULL
GROUP BY purchase_weekday
ORDER BY purchase_weekday;

-- name: holiday_vs_rest
-- The season is short, so compare demand per selling day, not totals.
SELECT is_holiday_season,
       count(DISTINCT cast(order_ts AS date)) AS n_days,
       count(DISTINCT order_id) AS n_orders,
       sum(quantity) AS units,
       sum(price * quantity) AS revenue,
       cast(count(DISTINCT order_id) AS double) / count(DISTINCT cast(order_ts AS date)) AS orders_per_day,
       sum(price * quantity) / count(DISTINCT cast(order_ts AS date)) AS revenue_per_day
FROM ecomrec.order_features
WHERE is_holiday_season IS NOT NULL AND order_ts IS NOT NULL
GROUP BY is_holiday_season
ORDER BY is_holiday_season;
