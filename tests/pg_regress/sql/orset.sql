-- orset: an add-wins observed-remove set of text elements.

-- The article's example: both replicas have seen "milk" added by a; b removes it while a adds
-- it again. The merge keeps the add, in either order.
SELECT orset_add(NULL, 'milk', 'a') AS base \gset
SELECT orset_remove(:'base', 'milk') AS b, orset_add(:'base', 'milk', 'a') AS a \gset
SELECT orset_to_array(:'b') AS b_alone, orset_to_array(:'a') AS a_alone,
       orset_to_array(:'a'::orset || :'b') AS a_b, orset_to_array(:'b'::orset || :'a') AS b_a;
-- A remove that has seen the add removes it everywhere.
SELECT orset_to_array(orset_remove(:'a', 'milk') || :'a') AS removed_after_seeing;
-- A remove of an element this replica never saw removes nothing elsewhere.
SELECT orset_to_array(orset_remove(NULL, 'eggs') || orset_add(NULL, 'eggs', 'c')) AS unseen_remove;

-- Forms: text (keys in byte order), jsonb, binary; the empty set is {}.
SELECT orset_add(orset_add(orset_add(NULL, 'milk', 'a'), 'eggs', 'b'), 'milk', 'a') AS s \gset
SELECT :'s'::orset AS text_form, :'s'::orset::jsonb -> 'clock' AS clock,
       orset_size(:'s'), orset_contains(:'s', 'eggs') AS has_eggs, orset_contains(:'s', 'tea') AS has_tea;
SELECT '{}'::orset AS empty, orset_size('{}'), orset_to_array('{}');
-- Elements as rows, as an array (the cast), and @> for "holds all of these".
SELECT orset_elements(:'s') AS element;
SELECT (:'s'::orset)::text[] AS as_array, :'s'::orset @> ARRAY['milk', 'eggs'] AS has_both,
       :'s'::orset @> ARRAY['milk', 'tea'] AS has_milk_and_tea, :'s'::orset @> ARRAY[]::text[] AS has_nothing_missing,
       :'s'::orset @> ARRAY['milk', NULL] AS with_null;
SELECT (:'s'::orset)::bytea::orset = :'s' AS bytea_round_trip,
       orset_recv_ok FROM (SELECT orset_send(:'s') = (:'s'::orset)::bytea AS orset_recv_ok) x;
-- Everything removed: the clock stays, so a stale copy of an add cannot bring it back.
SELECT orset_remove(orset_remove(:'s', 'milk'), 'eggs') AS cleared \gset
SELECT :'cleared'::orset AS cleared, orset_to_array(:'cleared'::orset || :'base') AS stale_add_stays_out;

-- Three replicas, each adding and removing on its own state step by step (a node's adds must
-- build on its own latest state, as a row updated in place does). Every state of every step
-- merged, in any order, gives the merge of the three final states, whose elements are the
-- union of theirs (no replica removed what another added).
CREATE TEMP TABLE carts AS
WITH RECURSIVE history(replica, step, s) AS (
    SELECT r, 0, NULL::orset FROM generate_series(1, 3) r
    UNION ALL
    SELECT replica, step + 1,
           CASE WHEN (step + 1) % 3 = 0 THEN orset_remove(s, 'item-' || (step * 5 + replica) % 10)
                ELSE orset_add(s, 'item-' || ((step + 1) * 7 + replica) % 10, 'node-' || replica) END
    FROM history WHERE step < 40
)
SELECT replica, step, s FROM history WHERE step > 0;
SELECT orset_merge_agg(s ORDER BY replica, step) = orset_merge_agg(s ORDER BY step DESC, replica DESC) AS order_free,
       orset_merge_agg(s) = orset_merge_agg(s) || orset_merge_agg(s) AS idempotent,
       orset_merge_agg(s) = (SELECT orset_merge_agg(s) FROM carts WHERE step = 40) AS finals_hold_everything,
       orset_to_array(orset_merge_agg(s)) = (SELECT array_agg(DISTINCT e COLLATE "C" ORDER BY e COLLATE "C")
           FROM carts, unnest(orset_to_array(s)) e WHERE step = 40) AS union_of_finals,
       orset_to_array(orset_merge_agg(s)) AS merged
FROM carts;
SELECT replica, orset_to_array(orset_merge_agg(s)) FROM carts GROUP BY replica ORDER BY replica;
SELECT count(*) AS distinct_states FROM (SELECT s FROM carts GROUP BY s) g;
SELECT orset_merge_agg(s) IS NULL AS zero_rows_give_null FROM carts WHERE false;

-- Errors: each a clear ERROR with its SQLSTATE.
\set VERBOSITY sqlstate
SELECT '{"clock": {"b": 1, "a": 1}, "elements": {}}'::orset;
SELECT '{"clock": {"a": 1}, "elements": {"x": {"a": 2}}}'::orset;
SELECT '{"clock": {}, "elements": {}}'::orset;
SELECT '\x0100'::bytea::orset;
SELECT '\x02000000000000'::bytea::orset;
SELECT orset_add(NULL, repeat('x', 4097), 'a');
SELECT orset_add(NULL, NULL, 'a');
SELECT orset_add(NULL, 'x', '');
SELECT orset_add(NULL, 'x', NULL);
SELECT orset_remove(NULL, NULL);
\set VERBOSITY default
SELECT '{"clock": {"a": 1}, "elements": {"x": {"a": 2}}}'::orset;
