-- A few rows for the docker-compose walk-through (runs after demo.sql in the postgres container's init folder).
INSERT INTO public.users (org_id, name, email) VALUES
    (7, 'Ada', 'ada@example.com'),
    (7, 'Grace', 'grace@example.com'),
    (8, 'Edsger', 'edsger@example.com');
