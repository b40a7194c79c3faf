CREATE TABLE received (
    channel integer PRIMARY KEY,
    count   bigint NOT NULL
);
