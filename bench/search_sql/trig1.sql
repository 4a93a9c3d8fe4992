BEGIN;
DO $$ DECLARE t0 timestamptz := clock_timestamp(); r record; BEGIN
  FOR r IN SELECT id FROM tickets_message WHERE id > 4100000 ORDER BY id LIMIT 1000 LOOP
    INSERT INTO tickets_message (platform, kind, direction, is_public, conversation_id, in_reply_to_external_id, author_external_id, author_username, author_display_name, author_followers, text, created_at, received_at, raw, organization_id, sent_by_id, ticket_id, step, author_verified, found_by, external_id) SELECT platform, kind, direction, is_public, conversation_id, in_reply_to_external_id, author_external_id, author_username, author_display_name, author_followers, text, created_at, received_at, raw, organization_id, sent_by_id, ticket_id, step, author_verified, found_by, '' FROM tickets_message WHERE id = r.id;
  END LOOP;
  RAISE NOTICE 'with trigger: % ms per row', round((extract(epoch from clock_timestamp() - t0) * 1000 / 1000)::numeric, 4);
END $$;
ROLLBACK;
BEGIN;
ALTER TABLE tickets_message DISABLE TRIGGER tickets_ticketsearch_message_insert;
DO $$ DECLARE t0 timestamptz := clock_timestamp(); r record; BEGIN
  FOR r IN SELECT id FROM tickets_message WHERE id > 4100000 ORDER BY id LIMIT 1000 LOOP
    INSERT INTO tickets_message (platform, kind, direction, is_public, conversation_id, in_reply_to_external_id, author_external_id, author_username, author_display_name, author_followers, text, created_at, received_at, raw, organization_id, sent_by_id, ticket_id, step, author_verified, found_by, external_id) SELECT platform, kind, direction, is_public, conversation_id, in_reply_to_external_id, author_external_id, author_username, author_display_name, author_followers, text, created_at, received_at, raw, organization_id, sent_by_id, ticket_id, step, author_verified, found_by, '' FROM tickets_message WHERE id = r.id;
  END LOOP;
  RAISE NOTICE 'without trigger: % ms per row', round((extract(epoch from clock_timestamp() - t0) * 1000 / 1000)::numeric, 4);
END $$;
ROLLBACK;
