"""the sale at the till as one PostgreSQL function (shop_sell): the whole sale in one round trip

What :func:`timebank.shop.sale.sell` does on SQLite, in the same order with the same rows, locks and
refusals, written in PL/pgSQL so that a sale on PostgreSQL waits for the database once instead of
fifteen times (docs/performance.md, "The sale's round trips"). The ledger's transaction is hashed
here with the encoding of ``ledger/encoding.py`` (docs/ledger-format.md): canonical JSON built with
``to_json`` for strings, whose escapes are Python's ``json.dumps(ensure_ascii=False)``'s, and
``sha256``; ``tests/test_sale_function.py`` holds the two equal over awkward text, and ``timebank
verify`` re-derives every hash. A refusal is raised as SQLSTATE ``TB409`` (or ``TB404``) with the
error code as its message and the figures of the refusal as JSON in its detail; the Python caller
turns it into the same problem as on SQLite. Nothing on SQLite changes.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-07

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = '0028'
down_revision = '0027'
branch_labels = None
depends_on = None

#: ledger/encoding.py's ``leaf_bytes`` (docs/ledger-format.md), as text: a JSON object with its keys
#: sorted, no white space, strings as ``json.dumps(ensure_ascii=False)`` writes them (``to_json``
#: escapes the same characters the same way), the postings ``[code, unit, amount]`` sorted as
#: Python sorts tuples (``COLLATE "C"``: code point order).
LEDGER_LEAF = r"""
CREATE OR REPLACE FUNCTION ledger_leaf(p_id bigint, p_created_at timestamp, p_kind text, p_category text,
                                       p_memo text, p_actor text, p_reference text, p_reverses_id bigint,
                                       p_postings jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $fn$
  SELECT '{"actor":' || coalesce(to_json(p_actor)::text, 'null')
      || ',"category":' || coalesce(to_json(p_category)::text, 'null')
      || ',"created_at":' || to_json(to_char(p_created_at, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))::text
      || ',"id":' || p_id
      || ',"kind":' || to_json(p_kind)::text
      || ',"memo":' || to_json(coalesce(p_memo, ''))::text
      || ',"postings":[' || coalesce((
           SELECT string_agg('[' || to_json(leg->>0)::text || ',' || to_json(leg->>1)::text || ','
                             || ((leg->>2)::bigint)::text || ']',
                             ',' ORDER BY (leg->>0) COLLATE "C", (leg->>1) COLLATE "C", (leg->>2)::bigint)
             FROM jsonb_array_elements(p_postings) AS leg), '') || ']'
      || ',"reference":' || coalesce(to_json(p_reference)::text, 'null')
      || ',"reverses_id":' || coalesce(p_reverses_id::text, 'null')
      || ',"v":1}'
$fn$
"""

# The ledger's advisory lock is ledger.config.PG_WRITER_LOCK (0x74696D65).
SHOP_SELL = r"""
CREATE OR REPLACE FUNCTION shop_sell(p jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $fn$
DECLARE
  v_at timestamp := (p->>'at')::timestamp;
  v_user_community int := (p->>'user_community_id')::int;
  v_clerk int := (p->>'clerk_id')::int;
  v_actor text := p->>'actor';
  v_household int;
  v_community int;
  v_community_code text;
  v_resident int;
  v_wallet text;
  v_clerk_partner int;
  v_partner int;
  v_line jsonb;
  v_row record;
  g_id int[] := '{}';
  g_barcode text[] := '{}';
  g_name text[] := '{}';
  g_price int[] := '{}';
  g_limit int[] := '{}';
  g_on_hand int[] := '{}';
  g_active boolean[] := '{}';
  g_kind text[] := '{}';
  g_places int[] := '{}';
  g_partner int[] := '{}';
  g_threshold int[] := '{}';
  v_g int;
  v_goods int[] := '{}';
  v_qty int[] := '{}';
  v_idx int;
  v_n int;
  v_taken bigint;
  v_total bigint := 0;
  v_receipt_no int;
  v_receipt int;
  v_line_id int;
  v_movement int;
  v_left int;
  v_take int;
  v_lot record;
  v_lines jsonb := '[]';
  v_audit_lines text := '';
  v_note text;
  v_wallet_row record;
  v_seller_row record;
  v_seller text;
  v_head record;
  v_id bigint;
  v_prev text;
  v_memo text;
  v_reference text;
  v_leaf text;
  v_leaf_hash text;
  v_hash text;
  v_balance bigint;
  v_anyone_phone boolean;
  v_payload text;
  v_texting boolean := (p->>'texting')::boolean;
BEGIN
  -- The member: a household card, a resident card, or the resident of a pay code.
  IF p->>'resident_id' IS NOT NULL THEN
    SELECT h.id, h.community_id, c.code, r.id INTO v_household, v_community, v_community_code, v_resident
      FROM residents r JOIN households h ON h.id = r.household_id JOIN communities c ON c.id = h.community_id
     WHERE r.id = (p->>'resident_id')::int;
  ELSE
    SELECT h.id, h.community_id, c.code, NULL INTO v_household, v_community, v_community_code, v_resident
      FROM households h JOIN communities c ON c.id = h.community_id WHERE h.member_code = p->>'member_code';
    IF v_household IS NULL THEN
      SELECT h.id, h.community_id, c.code, r.id INTO v_household, v_community, v_community_code, v_resident
        FROM residents r JOIN households h ON h.id = r.household_id JOIN communities c ON c.id = h.community_id
       WHERE r.member_code = p->>'member_code';
    END IF;
  END IF;
  IF v_household IS NULL THEN
    RAISE EXCEPTION 'unknown_member' USING ERRCODE = 'TB404';
  END IF;
  IF p->>'role' <> 'admin' AND v_community <> v_user_community THEN
    -- A guest pays here from their guest wallet, named by their own card or pay code.
    IF v_resident IS NULL OR NOT EXISTS (SELECT 1 FROM guest_memberships
                                          WHERE resident_id = v_resident AND community_id = v_user_community) THEN
      RAISE EXCEPTION 'unknown_member' USING ERRCODE = 'TB404';
    END IF;
    v_wallet := format('guest:%s:%s:points', v_resident, v_user_community);
    v_community := v_user_community;
    SELECT code INTO v_community_code FROM communities WHERE id = v_user_community;
  ELSE
    v_wallet := format('household:%s:points', v_household);
  END IF;

  -- A pay code pays once.
  IF p->>'nonce' IS NOT NULL THEN
    IF EXISTS (SELECT 1 FROM shop_used_pay_codes WHERE nonce = p->>'nonce') THEN
      RAISE EXCEPTION 'pay_code_used' USING ERRCODE = 'TB409';
    END IF;
    BEGIN
      INSERT INTO shop_used_pay_codes (nonce, resident_id, used_at) VALUES (p->>'nonce', v_resident, v_at);
    EXCEPTION WHEN unique_violation THEN
      RAISE EXCEPTION 'pay_code_used' USING ERRCODE = 'TB409';
    END;
  END IF;

  -- The goods, locked in id order; the lines in their order: unknown goods, one seller per receipt.
  SELECT partner_id INTO v_clerk_partner FROM shop_partner_clerks WHERE user_id = v_clerk;
  FOR v_row IN
    SELECT i.id, i.barcode, i.name, i.price_points, i.monthly_limit_per_household AS monthly_limit, i.on_hand,
           i.active AND NOT EXISTS (SELECT 1 FROM shop_partners sp WHERE sp.id = i.partner_id AND NOT sp.active)
             AS active,
           i.kind, i.daily_places, i.partner_id, i.low_stock_threshold
      FROM shop_items i
     WHERE i.community_id = v_community
       AND (i.id IN (SELECT (l->>'item_id')::int FROM jsonb_array_elements(p->'lines') l
                      WHERE l->>'item_id' IS NOT NULL)
            OR i.barcode IN (SELECT l->>'barcode' FROM jsonb_array_elements(p->'lines') l
                              WHERE l->>'item_id' IS NULL))
     ORDER BY i.id FOR UPDATE OF i
  LOOP
    g_id := g_id || v_row.id;
    g_barcode := g_barcode || v_row.barcode::text;
    g_name := g_name || v_row.name::text;
    g_price := g_price || v_row.price_points;
    g_limit := g_limit || v_row.monthly_limit;
    g_on_hand := g_on_hand || v_row.on_hand;
    g_active := g_active || v_row.active;
    g_kind := g_kind || v_row.kind::text;
    g_places := g_places || v_row.daily_places;
    g_partner := g_partner || v_row.partner_id;
    g_threshold := g_threshold || v_row.low_stock_threshold;
  END LOOP;
  FOR v_line IN SELECT value FROM jsonb_array_elements(p->'lines') LOOP
    IF v_line->>'item_id' IS NOT NULL THEN
      v_g := array_position(g_id, (v_line->>'item_id')::int);
    ELSE
      v_g := array_position(g_barcode, v_line->>'barcode');
    END IF;
    IF v_g IS NULL OR NOT g_active[v_g]
       OR (v_clerk_partner IS NOT NULL AND g_partner[v_g] IS DISTINCT FROM v_clerk_partner) THEN
      RAISE EXCEPTION 'unknown_item' USING ERRCODE = 'TB404', DETAIL = jsonb_build_object(
        'item_id', v_line->'item_id', 'barcode', v_line->'barcode')::text;
    END IF;
    v_idx := array_position(v_goods, v_g);
    IF v_idx IS NULL THEN
      v_goods := v_goods || v_g;
      v_qty := v_qty || (v_line->>'quantity')::int;
    ELSE
      v_qty[v_idx] := v_qty[v_idx] + (v_line->>'quantity')::int;
    END IF;
  END LOOP;
  v_n := coalesce(array_length(v_goods, 1), 0);
  FOR v_idx IN 1 .. v_n LOOP
    v_g := v_goods[v_idx];
    IF v_idx = 1 THEN
      v_partner := g_partner[v_g];
    ELSIF v_partner IS DISTINCT FROM g_partner[v_g] THEN
      RAISE EXCEPTION 'mixed_sellers' USING ERRCODE = 'TB409';
    END IF;
  END LOOP;

  -- Monthly limits, then a service's places today or the stock.
  FOR v_idx IN 1 .. v_n LOOP
    v_g := v_goods[v_idx];
    IF g_limit[v_g] IS NOT NULL THEN
      SELECT coalesce(sum(rl.quantity - rl.returned_quantity), 0) INTO v_taken
        FROM redemption_lines rl JOIN redemptions r ON r.id = rl.redemption_id
       WHERE r.household_id = v_household AND rl.item_id = g_id[v_g] AND r.status = 'completed'
         AND r.created_at >= (p->>'month_start')::timestamp AND r.created_at < (p->>'month_end')::timestamp;
      IF v_taken + v_qty[v_idx] > g_limit[v_g] THEN
        RAISE EXCEPTION 'limit_exceeded' USING ERRCODE = 'TB409', DETAIL = jsonb_build_object(
          'name', g_name[v_g], 'limit', g_limit[v_g], 'bought', v_taken)::text;
      END IF;
    END IF;
  END LOOP;
  FOR v_idx IN 1 .. v_n LOOP
    v_g := v_goods[v_idx];
    IF g_places[v_g] IS NOT NULL THEN
      SELECT coalesce(sum(rl.quantity - rl.returned_quantity), 0) INTO v_taken
        FROM redemption_lines rl JOIN redemptions r ON r.id = rl.redemption_id
       WHERE rl.item_id = g_id[v_g] AND r.status = 'completed'
         AND r.created_at >= (p->>'day_start')::timestamp AND r.created_at < (p->>'day_end')::timestamp;
      IF v_taken + v_qty[v_idx] > g_places[v_g] THEN
        RAISE EXCEPTION 'no_places_left' USING ERRCODE = 'TB409', DETAIL = jsonb_build_object(
          'name', g_name[v_g], 'places', g_places[v_g], 'taken', v_taken, 'wanted', v_qty[v_idx])::text;
      END IF;
    ELSIF g_kind[v_g] = 'goods' AND g_on_hand[v_g] < v_qty[v_idx] THEN
      RAISE EXCEPTION 'insufficient_stock' USING ERRCODE = 'TB409', DETAIL = jsonb_build_object(
        'name', g_name[v_g], 'on_hand', g_on_hand[v_g], 'quantity', v_qty[v_idx])::text;
    END IF;
    v_total := v_total + g_price[v_g]::bigint * v_qty[v_idx];
  END LOOP;

  -- The receipt: its number, its lines, the stock leaving the shelf and its donor lots.
  UPDATE shop_receipt_counters SET last_no = last_no + 1 WHERE community_id = v_community
  RETURNING last_no INTO v_receipt_no;
  IF v_receipt_no IS NULL THEN  -- the community's first sale
    INSERT INTO shop_receipt_counters (community_id, last_no) VALUES (v_community, 0) ON CONFLICT DO NOTHING;
    UPDATE shop_receipt_counters SET last_no = last_no + 1 WHERE community_id = v_community
    RETURNING last_no INTO v_receipt_no;
  END IF;
  INSERT INTO redemptions (community_id, receipt_no, household_id, resident_id, identified_by, total_points,
                           returned_points, balance_after, status, clerk_id, created_at, partner_id)
  VALUES (v_community, v_receipt_no, v_household, v_resident, p->>'identified_by', v_total, 0, 0, 'completed',
          v_clerk, v_at, v_partner)
  RETURNING id INTO v_receipt;
  v_note := format('小票 %s 号', v_receipt_no);
  FOR v_idx IN 1 .. v_n LOOP
    v_g := v_goods[v_idx];
    INSERT INTO redemption_lines (redemption_id, item_id, name, quantity, unit_points, returned_quantity)
    VALUES (v_receipt, g_id[v_g], g_name[v_g], v_qty[v_idx], g_price[v_g], 0) RETURNING id INTO v_line_id;
    v_lines := v_lines || jsonb_build_object('id', v_line_id, 'item_id', g_id[v_g], 'name', g_name[v_g],
                                             'quantity', v_qty[v_idx], 'unit_points', g_price[v_g]);
    IF g_kind[v_g] = 'service' THEN  -- no shelf, no lots
      CONTINUE;
    END IF;
    BEGIN  -- the trigger moves on_hand; the CHECK refuses a shelf below zero
      INSERT INTO stock_movements (item_id, community_id, quantity, reason, note, redemption_id, actor, created_at)
      VALUES (g_id[v_g], v_community, -v_qty[v_idx], 'redemption', v_note, v_receipt, v_actor, v_at)
      RETURNING id INTO v_movement;
    EXCEPTION WHEN check_violation THEN  -- not while the goods are locked; kept as the last guard
      RAISE EXCEPTION 'insufficient_stock_late' USING ERRCODE = 'TB409', DETAIL = jsonb_build_object(
        'name', g_name[v_g], 'quantity', v_qty[v_idx])::text;
    END;
    v_left := v_qty[v_idx];
    FOR v_lot IN SELECT lot_id, remaining FROM stock_lots WHERE item_id = g_id[v_g] AND remaining > 0
                 ORDER BY lot_id LOOP
      EXIT WHEN v_left = 0;
      v_take := least(v_left, v_lot.remaining);
      INSERT INTO stock_lot_consumptions (lot_id, movement_id, quantity) VALUES (v_lot.lot_id, v_movement, v_take);
      v_left := v_left - v_take;
    END LOOP;
    IF v_left > 0 THEN  -- on_hand and the lots disagree: refuse rather than lose the donor trail
      RAISE EXCEPTION 'stock lots of item % hold fewer units than on_hand', g_id[v_g];
    END IF;
    -- Low stock: the clerks are told when the shelf falls to the threshold or below.
    IF g_on_hand[v_g] > g_threshold[v_g] AND g_threshold[v_g] >= g_on_hand[v_g] - v_qty[v_idx] THEN
      v_payload := format('{"item_id": %s, "name": %s, "on_hand": %s, "threshold": %s}', g_id[v_g],
                          to_json(g_name[v_g])::text, g_on_hand[v_g] - v_qty[v_idx], g_threshold[v_g]);
      INSERT INTO notifications (community_id, resident_id, user_id, household_id, event, payload, dedupe_key,
                                 created_at, channel, status, attempts, next_attempt_at)
      SELECT v_community, NULL, u.id, NULL, 'low_stock', v_payload, NULL, v_at,
             CASE WHEN v_texting AND u.phone IS NOT NULL AND u.phone <> '' THEN 'sms' ELSE 'page' END,
             CASE WHEN v_texting AND u.phone IS NOT NULL AND u.phone <> '' THEN 'pending' ELSE 'none' END, 0,
             CASE WHEN v_texting AND u.phone IS NOT NULL AND u.phone <> '' THEN v_at END
        FROM users u WHERE u.community_id = v_community AND u.role = 'clerk' AND u.active ORDER BY u.id;
    END IF;
  END LOOP;

  -- The points: the ledger's writer lock, the month-close guard, then one transaction of the chain.
  PERFORM pg_advisory_xact_lock(1953066341);
  IF EXISTS (SELECT 1 FROM month_closes WHERE community_id = v_community AND month = p->>'month') THEN
    RAISE EXCEPTION 'month_closed' USING ERRCODE = 'TB409', DETAIL = jsonb_build_object('month', p->>'month')::text;
  END IF;
  v_seller := CASE WHEN v_partner IS NULL THEN format('community:%s:supermarket:points', v_community)
                   ELSE format('community:%s:partner:%s:points', v_community, v_partner) END;
  SELECT id, unit, allow_negative, balance INTO v_wallet_row FROM ledger_accounts WHERE code = v_wallet;
  SELECT id, unit, allow_negative, balance INTO v_seller_row FROM ledger_accounts WHERE code = v_seller;
  IF v_wallet_row.id IS NULL THEN
    RAISE EXCEPTION 'unknown ledger account %', v_wallet;
  END IF;
  IF v_seller_row.id IS NULL THEN
    RAISE EXCEPTION 'unknown ledger account %', v_seller;
  END IF;
  IF v_total = 0 OR v_wallet_row.unit <> v_seller_row.unit THEN
    RAISE EXCEPTION 'the sale does not make a ledger transaction (total %)', v_total;
  END IF;
  IF NOT v_wallet_row.allow_negative AND v_wallet_row.balance - v_total < 0 THEN
    RAISE EXCEPTION 'insufficient_points' USING ERRCODE = 'TB409', DETAIL = jsonb_build_object(
      'balance', v_wallet_row.balance, 'total', v_total)::text;
  END IF;
  SELECT id, hash INTO v_head FROM ledger_transactions ORDER BY id DESC LIMIT 1;
  v_id := coalesce(v_head.id, 0) + 1;
  v_prev := coalesce(v_head.hash, repeat('0', 64));
  v_memo := format('爱心超市兑换 · 小票 %s 号', v_receipt_no);
  v_reference := format('redemption:%s', v_receipt);
  v_leaf := ledger_leaf(v_id, v_at, 'redemption', NULL, v_memo, v_actor, v_reference, NULL,
                        jsonb_build_array(jsonb_build_array(v_wallet, v_wallet_row.unit, -v_total),
                                          jsonb_build_array(v_seller, v_seller_row.unit, v_total)));
  v_leaf_hash := encode(sha256('\x00'::bytea || convert_to(v_leaf, 'UTF8')), 'hex');
  v_hash := encode(sha256(decode(v_prev, 'hex') || decode(v_leaf_hash, 'hex')), 'hex');
  INSERT INTO ledger_postings (transaction_id, account_id, amount, unit)
  VALUES (v_id, v_wallet_row.id, -v_total, v_wallet_row.unit), (v_id, v_seller_row.id, v_total, v_seller_row.unit);
  INSERT INTO ledger_transactions (id, kind, category, memo, actor, reference, reverses_id, idempotency_key,
                                   request_hash, created_at, leaf_hash, prev_hash, hash)
  VALUES (v_id, 'redemption', NULL, v_memo, v_actor, v_reference, NULL, NULL, NULL, v_at, v_leaf_hash, v_prev, v_hash);
  v_balance := v_wallet_row.balance - v_total;
  UPDATE redemptions SET balance_after = v_balance, transaction_id = v_id WHERE id = v_receipt;

  -- The audit log (timebank.core.audit_log.record: details as json.dumps(sort_keys=True)).
  SELECT coalesce(string_agg(to_json(k::text)::text || ': ' || q, ', ' ORDER BY k::text COLLATE "C"), '')
    INTO v_audit_lines FROM unnest(v_goods, v_qty) AS t (gi, q), LATERAL (SELECT g_id[gi] AS k) AS kk;
  INSERT INTO audit_log (created_at, user_id, actor, community_id, action, target, details, address)
  VALUES (v_at, v_clerk, p->>'username', v_community, 'redemption.create', v_reference,
          format('{"household_id": %s, "identified_by": %s, "lines": {%s}, "partner_id": %s, "receipt_no": %s,'
                 ' "total_points": %s, "transaction_id": %s}', v_household, to_json(p->>'identified_by')::text,
                 v_audit_lines, coalesce(v_partner::text, 'null'), v_receipt_no, v_total, v_id),
          p->>'address');

  -- The household is told its card or pay code was used (timebank.notices.operations.notify_household).
  v_payload := format('{"balance": %s, "identified_by": %s, "points": %s, "receipt_no": %s, "redemption_id": %s}',
                      v_balance, to_json(p->>'identified_by')::text, v_total, v_receipt_no, v_receipt);
  SELECT coalesce(bool_or(phone IS NOT NULL AND phone <> ''), false) INTO v_anyone_phone
    FROM residents WHERE household_id = v_household AND active;
  INSERT INTO notifications (community_id, resident_id, user_id, household_id, event, payload, dedupe_key,
                             created_at, channel, status, attempts, next_attempt_at)
  SELECT v_community, r.id, NULL, v_household, 'pay_code_used', v_payload, NULL, v_at, ch.channel,
         CASE ch.channel WHEN 'page' THEN 'none' ELSE 'pending' END, 0,
         CASE WHEN ch.channel = 'sms' THEN v_at END
    FROM residents r
    CROSS JOIN LATERAL (SELECT CASE WHEN r.phone IS NOT NULL AND r.phone <> ''
                                    THEN CASE WHEN v_texting THEN 'sms' ELSE 'page' END
                                    WHEN v_anyone_phone THEN 'page' ELSE 'print' END AS channel) ch
   WHERE r.household_id = v_household AND r.active ORDER BY r.id;

  RETURN jsonb_build_object('id', v_receipt, 'receipt_no', v_receipt_no, 'community_id', v_community,
                            'community_code', v_community_code, 'household_id', v_household,
                            'resident_id', v_resident, 'total', v_total, 'balance_after', v_balance,
                            'transaction_id', v_id, 'partner_id', v_partner, 'lines', v_lines);
END;
$fn$
"""


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        # As written: the driver would read format()'s %s as its placeholders.
        op.get_bind().exec_driver_sql(LEDGER_LEAF.replace("%", "%%"))
        op.get_bind().exec_driver_sql(SHOP_SELL.replace("%", "%%"))


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS shop_sell(jsonb)")
        op.execute("DROP FUNCTION IF EXISTS ledger_leaf(bigint, timestamp, text, text, text, text, text, bigint, jsonb)")
