-- Predicted vs actual review scores.
-- Reads gold/review_predictions (the review model's score per order line) and the actual
-- review_score of gold/order_features.  One review belongs to one order, so each order is
-- counted once (per category: once per category it bought from); orders without a review
-- are left out.  Runs unchanged on Athena (engine v3) and Spark SQL.

-- name: confusion_by_actual_score
-- Confusion counts: one row per actual score, one predicted_<k> column per predicted score,
-- with the mean predicted (argmax) and expected (sum of k * p_k) scores and the accuracy.
WITH scored AS (
    SELECT DISTINCT p.order_id, f.review_score AS actual_score, p.predicted_score, p.expected_score
    FROM ecomrec.review_predictions p
    JOIN ecomrec.order_features f ON f.order_id = p.order_id AND f.line_id = p.line_id
    WHERE f.review_score IS NOT NULL
)
SELECT actual_score,
       count(*) AS n_orders,
       sum(CASE WHEN predicted_score = 1 THEN 1 ELSE 0 END) AS predicted_1,
       sum(CASE WHEN predicted_score = 2 THEN 1 ELSE 0 END) AS predicted_2,
       sum(CASE WHEN predicted_score = 3 THEN 1 ELSE 0 END) AS predicted_3,
       sum(CASE WHEN predicted_score = 4 THEN 1 ELSE 0 END) AS predicted_4,
       sum(CASE WHEN predicted_score = 5 THEN 1 ELSE 0 END) AS predicted_5,
       avg(cast(predicted_score AS double)) AS mean_predicted_score,
       avg(expected_score) AS mean_expected_score,
       avg(CASE WHEN predicted_score = actual_score THEN 1 ELSE 0 END) AS accuracy
FROM scored
GROUP BY actual_score
ORDER BY actual_score;

-- name: by_category
-- Per product category: mean actual vs mean predicted score, accuracy and mean absolute
-- error of the expected score; largest categories first.
WITH scored AS (
    SELECT DISTINCT coalesce(f.category, 'unknown') AS category, p.order_id,
           f.review_score AS actual_score, p.predicted_score, p.expected_score
    FROM ecomrec.review_predictions p
    JOIN ecomrec.order_features f ON f.order_id = p.order_id AND f.line_id = p.line_id
    WHERE f.review_score IS NOT NULL
)
SELECT category,
       count(*) AS n_orders,
       avg(cast(actual_score AS double)) AS mean_actual_score,
       avg(cast(predicted_score AS double)) AS mean_predicted_score,
       avg(expected_score) AS mean_expected_score,
       avg(CASE WHEN predicted_score = actual_score THEN 1 ELSE 0 END) AS accuracy,
       avg(abs(expected_score - actual_score)) AS mean_abs_error
FROM scored
GROUP BY category
ORDER BY n_orders DESC, category;
