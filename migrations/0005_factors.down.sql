DROP INDEX sessions_user_id;
DROP TABLE factors;
