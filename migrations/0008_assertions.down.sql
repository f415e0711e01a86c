DROP TABLE assertions;
