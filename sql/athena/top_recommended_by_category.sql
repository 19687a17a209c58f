-- The most recommended products by category, per recommendation model.
-- Reads gold/recommendations (every model's top-k list per customer) and the product's
-- category, price and order count from gold/product_features; products without features
-- fall in category 'unknown'.  A product's reach is the number of customers whose list
-- holds it; ties go to the better mean rank, then the product id.  Top 10 per category.
-- Add `WHERE r.model = 'hybrid'` inside `reach` to look at one model.
-- Runs unchanged on Athena (engine v3) and Spark SQL.

-- name: top_recommended_by_category
WITH reach AS (
    SELECT r.model,
           coalesce(p.category, 'unknown') AS category,
           r.product_id,
           count(DISTINCT r.customer_id) AS n_customers,
           avg(cast(r.rank AS double)) AS mean_rank,
           max(p.avg_price) AS avg_price,
           max(p.n_orders) AS product_orders
    FROM ecomrec.recommendations r
    LEFT JOIN ecomrec.product_features p ON p.product_id = r.product_id
    GROUP BY r.model, coalesce(p.category, 'unknown'), r.product_id
),
ranked AS (
    SELECT model, category, product_id, n_customers, mean_rank, avg_price, product_orders,
           row_number() OVER (PARTITION BY model, category
                              ORDER BY n_customers DESC, mean_rank, product_id) AS category_rank
    FROM reach
)
SELECT model, category, category_rank, product_id, n_customers, mean_rank, avg_price, product_orders
FROM ranked
WHERE category_rank <= 10
ORDER BY model, category, category_rank;
