-- Sales trends from gold/order_features (one row per order line; revenue = price * quantity,
-- freight excluded).  Runs unchanged on Athena (engine v3) and Spark SQL.

-- name: monthly_sales
-- Revenue, orders, units, buyers and mean order value per calendar month.
SELECT cast(date_trunc('month', order_ts) AS date) AS order_month,
       count(DISTINCT order_id) AS n_orders,
       sum(quantity) AS units,
       count(DISTINCT customer_id) AS n_customers,
       sum(price * quantity) AS revenue,
       sum(price * quantity) / count(DISTINCT order_id) AS mean_order_value
FROM ecomrec.order_features
WHERE order_ts IS NOT NULL
GROUP BY cast(date_trunc('month', order_ts) AS date)
ORDER BY order_month;

-- name: top_products_by_revenue
-- The 20 products with the most revenue over the whole history, with their share of it.
WITH per_product AS (
    SELECT product_id,
           max(category) AS category,
           count(DISTINCT order_id) AS n_orders,
           sum(quantity) AS units,
           sum(price * quantity) AS revenue
    FROM ecomrec.order_features
    GROUP BY product_id
),
ranked AS (
    SELECT product_id, category, n_orders, units, revenue,
           revenue / nullif(sum(revenue) OVER (), 0) AS revenue_share,
           row_number() OVER (ORDER BY revenue DESC, product_id) AS revenue_rank
    FROM per_product
)
SELECT revenue_rank, product_id, category, n_orders, units, revenue, revenue_share
FROM ranked
WHERE revenue_rank <= 20
ORDER BY revenue_rank;
