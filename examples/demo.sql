-- The demo's schema: two tables, one of them in its own schema. Safe to run again.
DROP TABLE IF EXISTS public.users CASCADE;
DROP SCHEMA IF EXISTS billing CASCADE;
CREATE TABLE public.users (
    id           serial PRIMARY KEY,
    org_id       int,
    name         text NOT NULL,
    email        text,
    bio          text,
    last_seen_at timestamptz
);
CREATE SCHEMA billing;
CREATE TABLE billing.invoices (
    org_id   int NOT NULL,
    number   int NOT NULL,
    total    numeric(12, 2) NOT NULL,
    paid     boolean NOT NULL DEFAULT false,
    PRIMARY KEY (org_id, number)
);
-- The replication source renders the member-list key from the old row's org_id and compares ignore_columns, so users
-- needs the whole old row in the WAL (billing.invoices' templates use only its primary key).
ALTER TABLE public.users REPLICA IDENTITY FULL;
